"""Video file I/O with PyAV (FFmpeg, bundled in the ``av`` wheel): one frame, or the audio around a time.

    info = probe_video("clips/x.mp4")                      # duration, streams, size
    frame = read_frame("clips/x.mp4", 3.5)                 # (3, H, W) float in [0, 1]: the frame shown at 3.5 s
    wav = read_audio_at("clips/x.mp4", 3.5, 1.0, 16000)    # (16000,) mono float32: 1 s around 3.5 s

Both readers seek (to the keyframe at or before the time, in the stream's own
time base) and decode forward from there: they never decode a file from its
start. Rules (documented in docs/data.md):

- The frame *at* ``t`` is the last one whose presentation time is ``<= t``
  (the frame on screen at ``t``), so variable frame rates need nothing special.
- The audio is ``seconds`` long, centred on ``t`` and moved inside the file
  when ``t`` is near either end; a file shorter than ``seconds`` is zero-padded
  at the end. Channels are mixed to mono and resampled to ``sample_rate`` by
  FFmpeg's resampler.
- A missing stream, a time outside the file, or a file that is truncated or not
  a video raises :class:`~avkit.errors.MediaError` naming the file.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from torch import Tensor

from avkit.errors import MediaError
from avkit.fileio import atomic_open, require_file, undecodable_error

log = logging.getLogger(__name__)

VIDEO_EXPECTED = "a video file (MP4, MKV, WebM, AVI, ...)"
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mkv", ".webm", ".avi", ".mov")
#: FFmpeg muxer names by suffix, for writing.
_MUXERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi"}
#: How far past the last frame a time may lie and still show that frame (one frame at 10 fps).
_END_SLACK = 0.1


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds (from its container header and streams; nothing decoded).

    Attributes:
        duration: seconds (the longest stream; 0 if the file does not say).
        video_duration, audio_duration: each stream's own length, seconds (None: no such stream, or
            the file does not say).
        has_video, has_audio: whether it has a picture stream and a sound stream.
        fps: the picture stream's average frame rate, or None.
        width, height: picture size in pixels (0 without a picture stream).
        sample_rate: the sound stream's rate, or None.
    """

    duration: float
    has_video: bool
    has_audio: bool
    fps: float | None
    width: int
    height: int
    sample_rate: int | None
    video_duration: float | None = None
    audio_duration: float | None = None

    @property
    def usable_duration(self) -> float:
        """How long both streams last (the shorter one), for choosing times that both can serve."""
        spans = [d for d in (self.video_duration, self.audio_duration) if d]
        return min(spans) if spans else self.duration


def _open(path: Path) -> av.container.InputContainer:
    require_file(path, VIDEO_EXPECTED)
    try:
        return av.open(str(path), mode="r")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise _undecodable(path, exc) from None


def _undecodable(path: Path, exc: Exception) -> MediaError:
    said = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return undecodable_error(path, "a video", VIDEO_EXPECTED, ("an MP4", "a Matroska file", "a WebM", "an AVI"), "FFmpeg", said)


def _stream_seconds(stream: av.stream.Stream) -> float | None:
    if stream.duration is None or stream.time_base is None:
        return None
    return float(stream.duration * stream.time_base)


def _origin(container: av.container.InputContainer) -> float:
    """Where the file's time 0 is on its streams' clocks: times in a manifest count from the container's start."""
    return container.start_time / av.time_base if container.start_time else 0.0


def _duration(container: av.container.InputContainer, stream: av.stream.Stream) -> float:
    """A stream's length in seconds, or the container's; 0 when the file does not say."""
    return _stream_seconds(stream) or (container.duration or 0) / av.time_base


def probe_video(path: str | Path) -> VideoInfo:
    """Read a video's header: its streams and duration. Raises MediaError naming ``path``."""
    path = Path(path)
    with _open(path) as container:
        video = container.streams.video[0] if container.streams.video else None
        audio = container.streams.audio[0] if container.streams.audio else None
        v_span = _stream_seconds(video) if video is not None else None
        a_span = _stream_seconds(audio) if audio is not None else None
        spans = [s for s in (v_span, a_span) if s]
        duration = max(spans) if spans else (container.duration or 0) / av.time_base
        return VideoInfo(
            duration=float(duration),
            has_video=video is not None,
            has_audio=audio is not None,
            fps=float(video.average_rate) if video is not None and video.average_rate else None,
            width=video.codec_context.width if video is not None else 0,
            height=video.codec_context.height if video is not None else 0,
            sample_rate=audio.codec_context.sample_rate if audio is not None else None,
            video_duration=v_span,
            audio_duration=a_span,
        )


def _check_time(path: Path, t: float, duration: float, what: str) -> None:
    if not np.isfinite(t) or t < 0:
        raise MediaError(path, f"time t={t:g} must be a finite number of seconds >= 0")
    if duration and t > duration + _END_SLACK:
        raise MediaError(path, f"time t={t:g} s is past the end of its {what} ({duration:.3f} s)")


def read_frame(path: str | Path, t: float, strict: bool = False) -> Tensor:
    """The frame shown at ``t`` seconds, as float32 ``(3, H, W)`` in [0, 1]. A decoding error after
    a frame was found keeps that frame with a warning; ``strict`` refuses it.

    Raises:
        MediaError: no picture stream, ``t`` outside the video, or the file ends
            (truncated) before the frame shown at ``t``.
    """
    path = Path(path)
    with _open(path) as container:
        if not container.streams.video:
            raise MediaError(path, "has no video stream; expected a picture track to take the frame from")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        duration, origin = _duration(container, stream), _origin(container)
        _check_time(path, t, duration, "picture stream")
        shown, passed = None, False
        try:
            container.seek(int((origin + t) / stream.time_base), stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                if frame.time is not None and frame.time - origin > t + 1e-6 and shown is not None:
                    passed = True  # the next frame: the one before it is on screen at t
                    break
                shown = frame
        except av.error.FFmpegError as exc:
            if shown is None or strict:
                raise _undecodable(path, exc) from None
            log.warning("%s: decoding stopped at %.3f s (%s); using the frame shown there", path, shown.time or 0, exc)
        if shown is None:
            raise MediaError(path, f"holds no decodable frame at or before t={t:g} s (is the file truncated?)")
        if not passed and shown.time is not None:  # decoding ran out: does the last frame still show at t?
            held = float(shown.duration * shown.time_base) if getattr(shown, "duration", None) and shown.time_base else 0.0
            end = shown.time - origin + max(held, 1.0 / float(stream.average_rate or 10))
            if t > end + 1.0:
                raise MediaError(path, f"its last decodable frame is at {shown.time - origin:.3f} s, before t={t:g} s "
                                 f"(the header says {duration:.3f} s: the file is truncated)")  # fmt: skip
        rgb = shown.to_ndarray(format="rgb24")
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float().div_(255.0)


def clip_window(t: float, seconds: float, duration: float) -> float:
    """Start of a ``seconds``-long window centred on ``t``, moved inside ``[0, duration]`` (a
    duration of 0, unknown, moves it only to start at 0 or later)."""
    start = max(t - seconds / 2, 0.0)
    return float(min(start, max(duration - seconds, 0.0)) if duration else start)


#: Seek this much before a clip: audio decoders (AAC) need a frame or two of pre-roll to decode cleanly.
_PRE_ROLL = 0.1


def read_audio_at(path: str | Path, t: float, seconds: float, sample_rate: int, strict: bool = False) -> Tensor:
    """``seconds`` of sound around ``t`` (see :func:`clip_window`), mono float32 ``(round(seconds·rate),)``.
    A file whose sound ends before the window does (it is cut short) is padded with silence, with a
    warning; ``strict`` refuses it. A clip longer than the file is padded without one.

    Raises:
        MediaError: no sound stream, ``t`` outside the sound stream, or nothing decodable in the window.
    """
    path = Path(path)
    want = round(seconds * sample_rate)
    with _open(path) as container:
        if not container.streams.audio:
            raise MediaError(path, "has no audio stream; expected a sound track to take the clip from")
        stream = container.streams.audio[0]
        duration, origin = _duration(container, stream), _origin(container)
        _check_time(path, t, duration, "sound stream")
        start = clip_window(t, seconds, duration)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks: list[np.ndarray] = []
        first: float | None = None
        got = 0
        try:
            seek = max(origin + start - _PRE_ROLL, origin)
            container.seek(int(seek / stream.time_base), stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                if first is None:
                    first = float(frame.time or 0.0) - origin
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
                    got += chunks[-1].size
                if got >= (start - first) * sample_rate + want:
                    break
            else:
                chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
        except (av.error.FFmpegError, ValueError) as exc:
            if not chunks or strict:
                raise _undecodable(path, exc) from None
            log.warning("%s: audio decoding stopped early (%s); the clip is padded with silence", path, exc)
    if first is None or not chunks:
        raise MediaError(path, f"holds no decodable audio around t={t:g} s (is the file truncated?)")
    samples = np.concatenate(chunks)
    offset = max(round((start - first) * sample_rate), 0)
    clip = samples[offset : offset + want]
    if not np.isfinite(clip).all():
        raise MediaError(path, f"audio around t={t:g} s holds NaN or Inf samples")
    if clip.size < want:
        missing = (want - clip.size) / sample_rate
        if duration and start + seconds < duration - 0.05:  # the header promised sound there
            found = f"its sound ends {missing:.2f} s into the window the header promises (it is cut short)"
            if strict:
                raise MediaError(path, found + "; refused in strict mode")
            log.warning("%s: %s; the clip around t=%g s is padded with silence", path, found, t)
        clip = np.pad(clip, (0, want - clip.size))
    return torch.from_numpy(np.ascontiguousarray(clip, dtype=np.float32))


def save_video(
    path: str | Path,
    frames: Sequence[np.ndarray] | np.ndarray,
    fps: float,
    audio: np.ndarray | None = None,
    sample_rate: int = 16000,
    times: Sequence[float] | None = None,
    codec: str = "libx264",
) -> None:
    """Write ``frames`` (each ``(H, W, 3)`` uint8; H and W even) and optional mono ``audio`` (float
    in [-1, 1]) as a video file with an AAC sound track, atomically. The format follows the suffix.
    ``times``: each frame's presentation time in seconds (a variable frame rate); default ``i / fps``."""
    path = Path(path)
    frames = [np.ascontiguousarray(f, dtype=np.uint8) for f in frames]
    if not frames or frames[0].ndim != 3 or frames[0].shape[2] != 3:
        raise ValueError("frames: expected a non-empty list of (H, W, 3) uint8 arrays")
    height, width = frames[0].shape[:2]
    container = _MUXERS.get(path.suffix.lower())
    if container is None:
        raise ValueError(f"{path}: cannot write a video with suffix {path.suffix!r}; expected one of {sorted(_MUXERS)}")
    with atomic_open(path) as handle, av.open(handle, mode="w", format=container) as out:
        rate = Fraction(fps).limit_denominator(1000)
        vstream = out.add_stream(codec, rate=rate)
        vstream.width, vstream.height, vstream.pix_fmt = width, height, "yuv420p"
        astream = out.add_stream("aac", rate=sample_rate, layout="mono") if audio is not None else None
        vstream.codec_context.time_base = Fraction(1, 1000) if times is not None else 1 / rate
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = round(times[i] * 1000) if times is not None else i
            out.mux(vstream.encode(frame))
        out.mux(vstream.encode(None))
        if astream is not None:
            pcm = np.clip(np.asarray(audio, dtype=np.float32), -1, 1).reshape(1, -1)
            block = 1024
            for i in range(0, pcm.shape[1], block):
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm[:, i : i + block]), format="flt", layout="mono")
                frame.sample_rate = sample_rate
                frame.pts = i
                out.mux(astream.encode(frame))
            out.mux(astream.encode(None))
