"""The models: the policy (sampling, log-probs, fast decoding) and reward models (single, ensembles, sums)."""
