"""A training run as a whole: its folder on disk, the stages of `judgerl run` and what they leave.

The top of the library (only the CLI is above it): the workflow drives validation, training,
evaluation, the report and the export; `judgerl score` writes rewards for a file of rollouts.
"""
