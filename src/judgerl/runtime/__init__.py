"""The model-call runtime: how every call to a model endpoint is made, judge or policy alike.

Below the judges and above the backends: concurrency, rate limits (rpm/tpm), retries with
backoff, Retry-After, the circuit breaker, the completion cache, the call journal and the
accounting. The judges and the evaluation's policy sampling both call models through it.
"""
