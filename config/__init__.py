"""The bottom layer: every `CHAT_*` setting (`config.settings`) and the shared contract (`config.contract`).

Nothing here imports another package of the project.
"""
