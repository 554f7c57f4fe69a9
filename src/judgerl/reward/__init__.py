"""The reward: the pipeline (checks -> gate -> judges -> aggregate), the aggregation formula and dry run.

The model-call runtime it drives lives one layer down, in `judgerl.runtime`.
"""
