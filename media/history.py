"""Bounded history of forwarded packets, indexed by output sequence number, for NACKs."""

from __future__ import annotations

DEFAULT_SIZE = 1024


class PacketHistory:
    """A ring of the last ``size`` packets sent on one stream (plaintext, rewritten)."""

    __slots__ = ("_packets", "_seqs", "_size")

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        if size <= 0 or size & (size - 1):
            raise ValueError("history size must be a power of two")
        self._size = size
        self._seqs: list[int] = [-1] * size
        self._packets: list[bytes | None] = [None] * size

    def put(self, seq: int, packet: bytes) -> None:
        i = seq & (self._size - 1)
        self._seqs[i] = seq
        self._packets[i] = packet

    def get(self, seq: int) -> bytes | None:
        i = seq & (self._size - 1)
        return self._packets[i] if self._seqs[i] == seq else None

    def clear(self) -> None:
        self._seqs = [-1] * self._size
        self._packets = [None] * self._size
