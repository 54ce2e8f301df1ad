"""Delta Lake tables of the chat: their schemas, their paths under CHAT_DATA_DIR/warehouse, their readers.

The tables themselves (messages, strikes, user_moderation, rejected_messages,
user_stats) arrive with the moderation ledger.
"""
