"""The compact central-directory reader (read/zips.py) lists exactly what zipfile lists, and the
streaming zip writer of the generator (synth/zipout.py) writes what zipfile writes."""

from __future__ import annotations

import json
import random
import struct
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from calo_polars.problems import Problems
from calo_polars.read.inflate import Limits
from calo_polars.read.sources import iter_members
from calo_polars.read.zips import CompactZipFile, iter_zip, junk_reason
from calo_polars.synth import SynthOptions, synthesize
from calo_polars.synth.zipout import ZipStream, deflate

INFO_FIELDS = (
    "filename", "orig_filename", "header_offset", "CRC", "compress_size", "file_size", "compress_type", "flag_bits",
    "date_time", "external_attr", "internal_attr", "create_system", "create_version", "extract_version", "extra",
    "comment", "volume", "reserved",
)  # fmt: skip


def zipfile_members(path: Path) -> list[zipfile.ZipInfo]:
    """What iter_zip read before: zipfile's members, folders out, sorted by name then offset, junk out."""
    with zipfile.ZipFile(path) as zf:
        infos = sorted((i for i in zf.infolist() if not i.is_dir()), key=lambda i: (i.filename, i.header_offset))
    return [i for i in infos if not junk_reason(i.filename)]


def compact_members(path: Path) -> tuple[list[zipfile.ZipInfo], Counter[str]]:
    skipped: Counter[str] = Counter()
    zf = CompactZipFile(path, skipped)
    try:
        return [zf.info(r) for r in zf.listing.records], skipped
    finally:
        zf.close()


def assert_same_listing(path: Path) -> list[zipfile.ZipInfo]:
    expected = zipfile_members(path)
    got, _ = compact_members(path)
    assert [tuple(getattr(i, f) for f in INFO_FIELDS) for i in got] == [
        tuple(getattr(i, f) for f in INFO_FIELDS) for i in expected
    ]
    return got


def read_all(path: Path) -> tuple[list[tuple[str, bytes]], list[tuple[str, str, str]], Counter[str]]:
    problems, skipped = Problems(), Counter[str]()
    members = [(m.path, m.data) for m in iter_members([path], problems, skipped)]
    return members, [(p.file, p.kind, p.message) for p in problems.items], skipped


def test_many_members_in_any_order_with_folders_junk_and_repeated_names(tmp_path: Path) -> None:
    rng = random.Random(3)
    path = tmp_path / "many.zip"
    names = [f"logs/{rng.getrandbits(40):010x}/000000" for _ in range(70_000)]  # > 65,535: a zip64 end record
    names += ["logs/", "logs/dir/", "__MACOSX/logs/._x", "logs/.DS_Store", "logs/twice", "logs/twice", "logs/ä-utf8"]
    rng.shuffle(names)  # out of order: the reader sorts as zipfile's members were sorted
    with zipfile.ZipFile(path, "w") as zf, pytest.warns(UserWarning, match="Duplicate name"):
        for i, name in enumerate(names):
            zf.writestr(name, f"line {i}\n")
    got = assert_same_listing(path)
    assert len(got) == 70_000 + 3 and not any(i.filename.endswith("/") for i in got)
    skipped: Counter[str] = Counter()
    CompactZipFile(path, skipped).close()
    assert skipped == {"macOS resource fork": 1, "macOS folder metadata": 1}
    members, problems, _ = read_all(path)
    assert len(members) == 70_000 + 3
    assert [p[1] for p in problems] == ["duplicate_member_name"] * 2


def test_sorted_zip_needs_no_sort_and_lists_the_same(tmp_path: Path) -> None:
    path = tmp_path / "sorted.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(2000):
            zf.writestr(f"a/{i:05d}.log", f"{i}\n" * 3)
    assert_same_listing(path)


def test_unsafe_names_and_names_zipfile_cuts_are_listed_as_zipfile_lists_them(tmp_path: Path) -> None:
    path = tmp_path / "hostile.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for i, name in enumerate(["../up.log", "/abs.log", "C:/drive.log", "ok\x07bell.log", "nul\x00cut", "fine.log"]):
            zf.writestr(zipfile.ZipInfo(name), f"line {i}\n")
    assert_same_listing(path)
    _, problems, _ = read_all(path)
    assert sorted(kind for _, kind, _ in problems) == ["unsafe_member_name"] * 4


def test_cp437_names_and_a_self_extracting_stub(tmp_path: Path) -> None:
    inner = tmp_path / "inner.zip"
    with zipfile.ZipFile(inner, "w") as zf:
        zf.writestr("caf\u00e9.log", b"x\n")  # written with the UTF-8 flag
        zf.writestr("plain.log", b"y\n", compress_type=zipfile.ZIP_DEFLATED)
    data = bytearray(inner.read_bytes())
    for sig, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # drop the flag: the name is now read as cp437
        at = data.find(sig)
        data[at + flag_at] &= ~0x08  # bit 11 is bit 3 of the flags' second byte
        data[at + flag_at + 1] &= ~0x08
    path = tmp_path / "sfx.zip"
    path.write_bytes(b"#!stub\n" * 100 + bytes(data))  # bytes before the zip: offsets shift ("concat")
    got = assert_same_listing(path)
    assert got[0].filename == "caf\u251c\u2310.log"  # UTF-8 bytes read as cp437, as zipfile does
    members, problems, _ = read_all(path)
    assert [m[1] for m in members] == [b"x\n", b"y\n"] and problems == []


def test_zip64_offsets_past_4_gib(tmp_path: Path) -> None:
    """Members beyond 4 GiB (a sparse hole before them: no disk): zip64 extra fields and end records."""
    path = tmp_path / "big.zip"
    with open(path, "wb") as f:
        f.seek((4 << 30) + 123)
        out = ZipStream(f, (2024, 3, 1, 10, 19, 50), 0o100664 << 16)
        for i in range(3):
            text = f"member {i}\n".encode() * 100
            out.add(f"logs/{i}.log", *deflate(text), len(text))
        out.close()
    with zipfile.ZipFile(path) as zf:
        assert [zf.read(n) for n in zf.namelist()] == [f"member {i}\n".encode() * 100 for i in range(3)]
        assert all(i.header_offset > 4 << 30 and i.extra[:2] == b"\x01\x00" for i in zf.infolist())
    got = assert_same_listing(path)
    assert len(got) == 3
    members, problems, _ = read_all(path)
    assert [m[1] for m in members] == [f"member {i}\n".encode() * 100 for i in range(3)] and problems == []


def damaged(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_a_damaged_central_directory_is_one_problem_line_as_zipfile_says_it(tmp_path: Path) -> None:
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as zf:
        for i in range(50):
            zf.writestr(f"logs/{i:03d}.log", b"line\n")
    data = good.read_bytes()
    cd = data.find(b"PK\x01\x02")
    second = data.find(b"PK\x01\x02", cd + 4)
    end = data.find(b"PK\x05\x06")
    cases = {
        "cut-in-directory.zip": data[: (cd + end) // 2],  # the end record gone
        "bad-record-magic.zip": data[:second] + b"PK\x09\x09" + data[second + 4 :],
        "size-too-big.zip": data[: end + 12] + struct.pack("<L", end - cd + 1000) + data[end + 16 :],
        "bad-version.zip": data[: second + 6] + b"\xff\x00" + data[second + 8 :],
        "bad-extra.zip": data[: second + 30] + b"\x09\x00" + data[second + 32 :],
    }
    for name, blob in cases.items():
        path = damaged(tmp_path, name, blob)
        with pytest.raises((zipfile.BadZipFile, NotImplementedError, ValueError)) as exc:
            zipfile.ZipFile(path)
        members, problems, _ = read_all(path)
        assert members == [], name
        assert problems == [(str(path), "corrupt_zip", f"not a readable zip ({exc.value}): nothing in it was read")]
    # A wrong directory offset zipfile takes as bytes before the zip: listed the same (the members then fail alike).
    path = damaged(tmp_path, "bad-offset.zip", data[: end + 16] + struct.pack("<L", end + 10) + data[end + 20 :])
    assert len(assert_same_listing(path)) == 50


def test_random_damage_to_the_directory_fails_or_lists_exactly_as_zipfile(tmp_path: Path) -> None:
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as zf:
        for i in range(30):
            zf.writestr(f"logs/{i:03d}/\u00fc.log" if i % 7 == 0 else f"logs/{i:03d}.log", b"line\n" * i)
    data = good.read_bytes()
    cd = data.find(b"PK\x01\x02")
    rng = random.Random(11)
    for case in range(300):
        blob = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            blob[rng.randrange(cd, len(blob))] = rng.randrange(256)
        path = damaged(tmp_path, f"d{case}.zip", bytes(blob))
        try:
            expected = zipfile_members(path)
        except Exception as exc:  # whatever zipfile raises, iter_zip must say it in one line
            out = list(iter_zip(path, Counter(), Limits()))
            assert len(out) == 1 and out[0].error is not None and out[0].error.kind == "corrupt_zip", case
            assert str(exc) in out[0].error.message, case
            continue
        got, _ = compact_members(path)
        assert [tuple(getattr(i, f) for f in INFO_FIELDS) for i in got] == [
            tuple(getattr(i, f) for f in INFO_FIELDS) for i in expected
        ], case


# ---------------------------------------------------------------- the generator's streaming zip


def reference_zip(folder: Path, out: Path, options: SynthOptions) -> None:
    """The archive as the generator wrote it before streaming: every member through zipfile, in name order."""
    from datetime import timedelta

    exported = options.start + timedelta(days=options.days + 1)
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    with zipfile.ZipFile(out, "w") as zf:
        for name in files:
            info = zipfile.ZipInfo(name, date_time=(exported.year, exported.month, exported.day, 10, 19, 50))
            info.create_system = 3
            info.external_attr = 0o100664 << 16
            zf.writestr(info, (folder / name).read_bytes(), compress_type=zipfile.ZIP_DEFLATED, compresslevel=1)


def test_one_shard_zip_is_byte_for_byte_what_zipfile_wrote(tmp_path: Path) -> None:
    options = SynthOptions(users=60, days=6, seed=4, workers=1)
    synthesize(options, tmp_path / "s.zip")
    synthesize(options, tmp_path / "folder")
    reference_zip(tmp_path / "folder", tmp_path / "ref.zip", options)
    assert (tmp_path / "s.zip").read_bytes() == (tmp_path / "ref.zip").read_bytes()


def test_streamed_zip_of_several_shards_holds_the_same_members_and_truth(tmp_path: Path) -> None:
    options = SynthOptions(users=2300, days=4, seed=9, workers=2)  # 3 shards, written as they arrive
    synthesize(options, tmp_path / "s.zip")
    synthesize(options, tmp_path / "folder")
    reference_zip(tmp_path / "folder", tmp_path / "ref.zip", options)
    with zipfile.ZipFile(tmp_path / "s.zip") as a, zipfile.ZipFile(tmp_path / "ref.zip") as b:
        assert a.namelist() == b.namelist()  # the central directory in name order, as the export lists it
        for x, y in zip(a.infolist(), b.infolist(), strict=True):
            assert (x.CRC, x.file_size, x.compress_size, x.date_time, x.external_attr) == (
                y.CRC, y.file_size, y.compress_size, y.date_time, y.external_attr,
            )  # fmt: skip
            assert a.read(x) == b.read(y)
    assert_same_listing(tmp_path / "s.zip")
    zipped = json.loads((tmp_path / "s.truth.json").read_text(encoding="utf-8"))
    folder = json.loads((tmp_path / "folder.truth.json").read_text(encoding="utf-8"))
    zipped["archive"].pop("layout"), folder["archive"].pop("layout")
    assert zipped == folder and sum(zipped["outcome_counts"].values()) == zipped["archive"]["transactions"] > 0


def test_streamed_truth_is_the_json_dumps_of_the_document(tmp_path: Path) -> None:
    synthesize(SynthOptions(users=1200, days=5, seed=2, workers=1), tmp_path / "t.zip")
    text = (tmp_path / "t.truth.json").read_text(encoding="utf-8")
    document = json.loads(text)
    assert text == json.dumps(document, indent=1, ensure_ascii=False) + "\n"
    for ids in [*document["outcomes"].values(), document["not_in_sync_after"]]:
        assert ids == sorted(ids)
    assert {k: len(v) for k, v in document["outcomes"].items()} == document["outcome_counts"]
    assert not list(tmp_path.glob(".*"))  # no spilled runs or temporaries left behind
