"""The optimizers: RL (PPO, RLOO), direct alignment (DPO, IPO, SLiC, R-DPO) and iterated RLHF's proxy."""
