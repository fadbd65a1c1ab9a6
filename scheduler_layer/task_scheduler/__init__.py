"""Serverless task scheduler: the code both Lambda functions share (shipped as a SAM layer)."""

__version__ = "0.1.0"
USER_AGENT = f"serverless-task-scheduler/{__version__}"
