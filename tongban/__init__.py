"""Tongban (通办视频协助): video remote assistance between government service halls."""

__version__ = "0.1.0"
