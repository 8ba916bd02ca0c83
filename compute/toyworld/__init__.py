"""The toy RLVR world: a verifiable addition task, a character tokenizer, a tiny Qwen2 base trained by SFT
with plausible mistakes, and GRPO checkpoints. The embedded default, the demo and the test bed."""
