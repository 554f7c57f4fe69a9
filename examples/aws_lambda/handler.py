"""The Nova RFT reward Lambda: judgerl's handler, re-exported (handler setting: `handler.lambda_handler`).

Deploying judgerl's own module path (`judgerl.adapters.aws_lambda.lambda_handler`) works too;
this file exists so that a deployment package has an obvious entry point to point at, and a
place to add your own pre- or post-processing around the judgerl reward.
"""

from judgerl.adapters.aws_lambda import lambda_handler

__all__ = ["lambda_handler"]
