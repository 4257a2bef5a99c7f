"""The wire (layer 2): opcodes, the frame reader and writer, shared-memory rings, term programs.

Everything here knows docs/PROTOCOL.md and nothing of ports, drivers or the worker's loop.
"""
