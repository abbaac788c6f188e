"""Picture types and reference counts read from packet headers, without decoding any pixels.

* MPEG-4 Part 2 (ISO/IEC 14496-2, §6.2.5): a VOP starts with the code ``00 00 01 B6``; its next two
  bits are ``vop_coding_type``: 0 I, 1 P, 2 B, 3 S (sprite / global motion compensation). P-VOPs
  always predict from the one previous I- or P-VOP.
* H.264 (ITU-T H.264, §7.3): NAL units come either length-prefixed (``avcC`` extradata in MP4/MKV,
  first byte 1) or after ``00 00 01`` start codes (Annex B: raw ``.h264``, AVI). A slice NAL (type 1
  or 5) starts ``first_mb_in_slice ue(v)``, ``slice_type ue(v)`` with ``slice_type % 5``: 0 P, 1 B,
  2 I, 3 SP, 4 SI. A picture is B if any slice is B, else P if any slice predicts, else I. The
  sequence parameter set (NAL type 7, §7.3.2.1.1) gives ``max_num_ref_frames``.

Each packet's type is one letter: ``I``, ``P``, ``B``, ``S`` or ``?`` (not a picture we recognise).
"""

from __future__ import annotations

from collections.abc import Iterator

#: H.264 profiles whose SPS carries chroma format, bit depths and scaling matrices (§7.3.2.1.1).
_HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})
_H264_SLICE_TYPES = "PBIPI"  # slice_type % 5 -> picture letter (SP counts as P, SI as I)
_MPEG4_VOP_TYPES = "IPBS"
_PICTURE_RANK = {"I": 0, "P": 1, "B": 2}


class BitReader:
    """Reads bits MSB first, and Exp-Golomb codes ``ue(v)``/``se(v)`` (H.264 §9.1)."""

    def __init__(self, data: bytes) -> None:
        self._value = int.from_bytes(data, "big")
        self._remaining = 8 * len(data)

    def bits(self, n: int) -> int:
        if n > self._remaining:
            raise ValueError("header ends early")
        self._remaining -= n
        return (self._value >> self._remaining) & ((1 << n) - 1)

    def ue(self) -> int:
        zeros = 0
        while self.bits(1) == 0:
            zeros += 1
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        code = self.ue()
        return (code + 1) // 2 if code % 2 else -(code // 2)


def _unescape(payload: bytes) -> bytes:
    """Remove H.264 emulation-prevention bytes (``00 00 03`` -> ``00 00``)."""
    return payload.replace(b"\x00\x00\x03", b"\x00\x00")


def mpeg4_picture_type(packet: bytes | memoryview) -> str:
    """The VOP coding type of an MPEG-4 Part 2 packet; ``B`` if it packs a B-VOP (DivX packed
    bitstream), ``?`` if it holds no VOP."""
    data = bytes(packet)
    letters = []
    start = data.find(b"\x00\x00\x01\xb6")
    while 0 <= start < len(data) - 4:
        letters.append(_MPEG4_VOP_TYPES[data[start + 4] >> 6])
        start = data.find(b"\x00\x00\x01\xb6", start + 4)
    if not letters:
        return "?"
    if "S" in letters:
        return "S"
    return max(letters, key=_PICTURE_RANK.__getitem__)


def _annexb_nals(data: bytes) -> Iterator[bytes]:
    """NAL units after ``00 00 01`` start codes; trailing zero bytes (of a following 4-byte start
    code or ``cabac_zero_word`` padding) are dropped."""
    marks = []
    pos = data.find(b"\x00\x00\x01")
    while pos >= 0:
        marks.append(pos)
        pos = data.find(b"\x00\x00\x01", pos + 3)
    for begin, end in zip(marks, [*marks[1:], len(data)], strict=True):
        yield data[begin + 3 : end].rstrip(b"\x00")


def _length_prefixed_nals(data: bytes, length_size: int) -> Iterator[bytes]:
    pos = 0
    while pos + length_size <= len(data):
        size = int.from_bytes(data[pos : pos + length_size], "big")
        pos += length_size
        yield data[pos : pos + size]
        pos += size


class H264Headers:
    """Reads H.264 packets of one stream, given its extradata (``avcC`` or Annex B or empty)."""

    def __init__(self, extradata: bytes | None) -> None:
        extradata = extradata or b""
        self._length_size = (extradata[4] & 3) + 1 if extradata[:1] == b"\x01" and len(extradata) > 4 else 0
        self.max_ref_frames: int | None = None
        if self._length_size:
            self._scan_avcc(extradata)
        else:
            self._scan_nals(_annexb_nals(extradata))

    def _nals(self, data: bytes) -> Iterator[bytes]:
        if self._length_size:
            return _length_prefixed_nals(data, self._length_size)
        return _annexb_nals(data)

    def _scan_avcc(self, extradata: bytes) -> None:
        """``avcC`` (ISO/IEC 14496-15 §5.2.4.1): 5 bytes, then SPS count & 0x1F, each 16-bit sized."""
        count, pos = extradata[5] & 0x1F, 6
        for _ in range(count):
            size = int.from_bytes(extradata[pos : pos + 2], "big")
            self._scan_nals([extradata[pos + 2 : pos + 2 + size]])
            pos += 2 + size

    def _scan_nals(self, nals: Iterator[bytes] | list[bytes]) -> None:
        for nal in nals:
            if nal and nal[0] & 0x1F == 7:
                refs = sps_max_ref_frames(nal)
                self.max_ref_frames = max(refs, self.max_ref_frames or 0)

    def picture_type(self, packet: bytes | memoryview) -> str:
        """The picture type of one access unit; also records any SPS it carries."""
        letters = []
        for nal in self._nals(bytes(packet)):
            if not nal:
                continue
            nal_type = nal[0] & 0x1F
            if nal_type in (1, 5):
                reader = BitReader(_unescape(nal[1:16]))
                reader.ue()  # first_mb_in_slice
                letters.append(_H264_SLICE_TYPES[reader.ue() % 5])
            elif nal_type == 7:
                self._scan_nals([nal])
        if not letters:
            return "?"
        return max(letters, key=_PICTURE_RANK.__getitem__)


def _skip_scaling_list(reader: BitReader, size: int) -> None:
    last = next_scale = 8
    for _ in range(size):
        if next_scale:
            next_scale = (last + reader.se() + 256) % 256
        last = next_scale or last


def sps_max_ref_frames(nal: bytes) -> int:
    """``max_num_ref_frames`` of an H.264 sequence parameter set NAL (header byte included)."""
    reader = BitReader(_unescape(nal[1:64]))
    profile_idc = reader.bits(8)
    reader.bits(16)  # constraint flags, level_idc
    reader.ue()  # seq_parameter_set_id
    if profile_idc in _HIGH_PROFILES:
        chroma_format_idc = reader.ue()
        if chroma_format_idc == 3:
            reader.bits(1)  # separate_colour_plane_flag
        reader.ue()  # bit_depth_luma_minus8
        reader.ue()  # bit_depth_chroma_minus8
        reader.bits(1)  # qpprime_y_zero_transform_bypass_flag
        if reader.bits(1):  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma_format_idc != 3 else 12):
                if reader.bits(1):
                    _skip_scaling_list(reader, 16 if i < 6 else 64)
    reader.ue()  # log2_max_frame_num_minus4
    poc_type = reader.ue()
    if poc_type == 0:
        reader.ue()  # log2_max_pic_order_cnt_lsb_minus4
    elif poc_type == 1:
        reader.bits(1)  # delta_pic_order_always_zero_flag
        reader.se()  # offset_for_non_ref_pic
        reader.se()  # offset_for_top_to_bottom_field
        for _ in range(reader.ue()):
            reader.se()
    return reader.ue()
