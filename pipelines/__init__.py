"""Spark jobs of the chat: the streaming relay (and ledger), the batch statistics."""
