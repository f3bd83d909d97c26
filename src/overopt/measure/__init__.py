"""What every optimizer is measured with: KL estimators, best-of-n, preference labels and the shared evaluator."""
