"""Video: seek-and-decode one frame or the sound around a time (PyAV), and write test videos."""

from avkit.video.io import (
    VIDEO_SUFFIXES,
    VideoInfo,
    probe_video,
    read_audio_at,
    read_frame,
    save_video,
)

__all__ = ["VIDEO_SUFFIXES", "VideoInfo", "probe_video", "read_audio_at", "read_frame", "save_video"]
