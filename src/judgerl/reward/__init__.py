"""The reward side of judgerl: pipeline (checks -> gate -> judges -> aggregate) and its runtime."""
