from __future__ import annotations

import csv
import io
import json
import os
import random
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from fpdf import FPDF
from PIL import Image

from core.uploads.sniff import SNIFF_BYTES, sniff
from worker.errors import PermanentJobError
from worker.jobs.uploads_process import csv_file, image, image_headers, json_file, text
from worker.jobs.uploads_process.processors import Derived, Processed, process

REPO = Path(__file__).resolve().parents[2]


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[float, str]] = []

    def __call__(self, fraction: float, message: str) -> None:
        assert 0.0 <= fraction <= 1.0
        self.calls.append((fraction, message))


def run(
    tmp_path: Path, name: str, data: bytes, content_type: str | None = None
) -> tuple[Processed, Recorder]:
    """Process `data` as an upload named `name`, typed by sniffing as the API does."""
    path = tmp_path / name
    path.write_bytes(data)
    work_dir = tmp_path / "derived"
    work_dir.mkdir(exist_ok=True)
    recorder = Recorder()
    kind = content_type or sniff(data[:SNIFF_BYTES], name)
    processed = process(path, kind, work_dir, recorder)
    json.dumps(processed.summary)  # must be storable as the job's result
    for item in processed.derived:
        assert item.path.parent == work_dir
        assert item.path.is_file()
    return processed, recorder


def failure(tmp_path: Path, name: str, data: bytes, content_type: str | None = None) -> str:
    """The error type of a file that cannot be processed; its message names no path."""
    with pytest.raises(PermanentJobError) as caught:
        run(tmp_path, name, data, content_type)
    message = str(caught.value)
    assert str(tmp_path) not in message
    assert "/tmp" not in message
    assert "Traceback" not in message
    return f"{caught.value.type}: {message}"


# The peak is VmHWM, the high-water mark of the process's memory: ru_maxrss would do,
# but Linux carries it over from the parent through fork and exec, and pytest's own
# peak would hide whatever the processor takes below it.
_MEASURE = r"""
import json, re, sys
from pathlib import Path
from worker.errors import PermanentJobError
from worker.jobs.uploads_process.processors import process

def peak_kib():
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\s*(\d+) kB", status)[1])

path = Path(sys.argv[1])
work_dir = path.parent / "derived"
work_dir.mkdir(exist_ok=True)
before = peak_kib()
try:
    outcome = process(path, sys.argv[2], work_dir, lambda fraction, message: None).kind
except PermanentJobError as exc:
    outcome = exc.type
print(json.dumps({"outcome": outcome, "grown_mib": (peak_kib() - before) / 1024}))
"""


def peak_growth(path: Path, content_type: str) -> tuple[str, float]:
    """Process the file in a fresh interpreter: the kind (or error type) and how far the
    peak memory rose above that of the interpreter with the processors imported, in MiB."""
    env = os.environ | {"PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path), content_type],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )
    measured = json.loads(result.stdout)
    return measured["outcome"], measured["grown_mib"]


# Text and Markdown


def test_utf8_text(tmp_path: Path) -> None:
    content = "Zoë's café — naïve façade\r\n日本語のテキスト\n\n  last   line"
    processed, _ = run(tmp_path, "notes.txt", content.encode())
    assert processed.kind == "text"
    assert processed.derived == []
    assert processed.summary == {
        "encoding": "utf-8",
        "lines": 4,
        "words": 8,
        "characters": len(content),
        "preview": "Zoë's café — naïve façade 日本語のテキスト last line",
        "preview_truncated": False,
    }


def test_latin1_text(tmp_path: Path) -> None:
    content = "Grüße aus Köln. Il était une fois, à côté de la forêt.\n" * 40
    processed, _ = run(tmp_path, "legacy.txt", content.encode("latin-1"))
    summary = processed.summary
    assert summary["encoding"] in {"cp1252", "iso8859-1"}
    assert summary["lines"] == 40
    assert summary["preview"].startswith("Grüße aus Köln. Il était une fois, à côté")
    assert len(summary["preview"]) == text.PREVIEW_CHARS
    assert summary["preview_truncated"] is True


def test_counts_do_not_depend_on_where_chunks_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(3)
    pieces = ["word", "mot", "слово", "語", " ", "  ", "\t", "\n", "\r\n", "\r"]
    content = "".join(rng.choice(pieces) for _ in range(5000)) + "end"
    monkeypatch.setattr(text, "CHUNK_CHARS", 7)
    processed, _ = run(tmp_path, "chunky.txt", content.encode(), "text/plain")
    assert processed.summary["characters"] == len(content)
    assert processed.summary["words"] == len(content.split())
    assert processed.summary["lines"] == len(content.splitlines())


def test_text_that_stops_decoding_midway_is_corrupt(tmp_path: Path) -> None:
    data = b"plain ascii line\n" * 5000 + b"and then \xff\xfe garbage\n"
    assert len(data) > text.SAMPLE_BYTES  # the sample saw only ASCII
    error = failure(tmp_path, "log.txt", data, "text/plain")
    assert error.startswith("corrupt_file: Could not read the text file as utf-8")
    assert "0xff" in error


def test_binary_data_sent_as_text_is_corrupt(tmp_path: Path) -> None:
    noise = random.Random(1).randbytes(4096)
    error = failure(tmp_path, "data.txt", noise, "text/plain")
    assert error.startswith("corrupt_file: The text file does not decode as text")


@pytest.mark.parametrize("chunk", [1 << 20, 5, 1])
def test_markdown_outline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    monkeypatch.setattr(text, "CHUNK_CHARS", chunk)
    content = (
        "---\ntitle: front matter\n---\n"
        "# Conveyor\n\nIntro with a [link](https://example.com).\n\n"
        "Setup\n=====\n\n```sh\n# a shell comment, not a heading\n```\n\n"
        "## Usage ##\n- one\n- two\n\nNotes\n-----\n#hashtag is not a heading\n### Last"
    )
    processed, _ = run(tmp_path, "README.md", content.encode())
    assert processed.kind == "markdown"
    summary = processed.summary
    assert summary["headings"] == 5
    assert summary["first_headings"] == [
        {"level": 1, "text": "Conveyor"},
        {"level": 1, "text": "Setup"},
        {"level": 2, "text": "Usage"},
        {"level": 2, "text": "Notes"},
        {"level": 3, "text": "Last"},
    ]
    assert summary["lines"] == content.count("\n") + 1


@pytest.mark.parametrize(
    ("content_type", "kind"), [("text/plain", "text"), ("text/markdown", "markdown")]
)
def test_one_endless_line_is_read_in_chunks(tmp_path: Path, content_type: str, kind: str) -> None:
    path = tmp_path / "endless.txt"
    with path.open("wb") as file:
        for _ in range(64):
            file.write(b"x" * (1 << 20))
    outcome, grown = peak_growth(path, content_type)
    assert outcome == kind
    assert grown < 24  # MiB: a few chunks, never the 64 MiB line


# CSV


def test_csv_with_header_and_mixed_types(tmp_path: Path) -> None:
    content = (
        "id,name,price,in_stock,added,updated,note\r\n"
        "1,Apple,0.5,true,2024-01-02,2024-01-02T10:00:00,\r\n"
        '2,"Pear, green",2,false,2024-02-03,2024-02-03 11:30,\r\n'
        "3,Kiwi,1.25,yes,2024-03-04,2024-03-04T08:15:00Z,\r\n"
        "4,Fig,3,no,2024-04-05,2024-04-05,\r\n"
        "5,Plum,,true,2024-05-06,not yet,\r\n"
        "6,Date,7,false,2024-06-07,2024-06-07T00:00:00,extra,field\r\n"
    )
    processed, _ = run(tmp_path, "fruit.csv", content.encode())
    assert processed.kind == "csv"
    summary = processed.summary
    assert summary["dialect"] == {"delimiter": ",", "quotechar": '"'}
    assert summary["has_header"] is True
    assert summary["rows"] == 6
    assert summary["ragged_rows"] == 1
    assert summary["column_count"] == 8
    assert summary["columns"] == [
        {"name": "id", "type": "integer"},
        {"name": "name", "type": "string"},
        {"name": "price", "type": "float"},
        {"name": "in_stock", "type": "boolean"},
        {"name": "added", "type": "date"},
        {"name": "updated", "type": "string"},  # "not yet" among the datetimes
        {"name": "note", "type": "string"},
        {"name": "column_8", "type": "string"},
    ]
    assert len(summary["sample_rows"]) == 5
    assert summary["sample_rows"][1] == [
        "2",
        "Pear, green",
        "2",
        "false",
        "2024-02-03",
        "2024-02-03 11:30",
        "",
    ]


def test_semicolon_csv_in_latin1(tmp_path: Path) -> None:
    rows = ["Stadt;Einwohner;Fläche;Gegründet"]
    rows += [f"Köln{i};{1000 + i};{i},5;01.0{1 + i % 9}.1900" for i in range(30)]
    processed, _ = run(tmp_path, "städte.csv", "\n".join(rows).encode("latin-1"))
    summary = processed.summary
    assert summary["encoding"] in {"cp1252", "iso8859-1"}
    assert summary["dialect"]["delimiter"] == ";"
    assert summary["has_header"] is True
    assert summary["rows"] == 30
    assert [column["type"] for column in summary["columns"]] == [
        "string",
        "integer",
        "float",
        "date",
    ]
    assert summary["columns"][2]["name"] == "Fläche"


def test_csv_without_a_header(tmp_path: Path) -> None:
    content = "1,2.5,x\n2,3.5,y\n3,4.5,z\n"
    processed, _ = run(tmp_path, "numbers.csv", content.encode())
    assert processed.summary["has_header"] is False
    assert processed.summary["rows"] == 3
    assert [column["name"] for column in processed.summary["columns"]] == [
        "column_1",
        "column_2",
        "column_3",
    ]


def test_wide_csv_row_is_refused_without_reading_it_whole(tmp_path: Path) -> None:
    data = b"a,b,c\n1,2,3\n4,5,6\n" + b"," * (2 << 20) + b"\n"
    error = failure(tmp_path, "wide.csv", data)
    assert error.startswith(
        "unsupported_file: CSV rows longer than 1,048,576 characters are not processed"
    )
    outcome, grown = peak_growth(tmp_path / "wide.csv", "text/csv")
    assert outcome == "unsupported_file"
    assert grown < 24  # MiB; 500 before, for a list of 2 million strings


def test_csv_row_of_many_short_lines_is_refused(tmp_path: Path) -> None:
    # Quoted line breaks: every line is short, the row they make is not.
    data = b"a,b,c\n1,2,3\n" + b'x,"\n",' * 200_000 + b"\n"
    error = failure(tmp_path, "lines.csv", data, "text/csv")
    assert "CSV rows longer than 1,048,576 characters" in error


def test_csv_row_with_too_many_fields_is_refused(tmp_path: Path) -> None:
    data = b"a,b,c\n1,2,3\n4,5,6\n" + b"," * csv_file.MAX_FIELDS + b"\n"
    error = failure(tmp_path, "fields.csv", data, "text/csv")
    assert error == (
        "unsupported_file: CSV rows wider than 10,000 fields are not processed "
        "(the row ending on line 4 has 10,001)"
    )


def test_wide_csv_summary_is_bounded(tmp_path: Path) -> None:
    width = csv_file.MAX_COLUMNS + 100
    rows = [",".join(f"name{i}" for i in range(width))]
    rows += [",".join(str(i * row) for i in range(width)) for row in range(3)]
    processed, _ = run(tmp_path, "wide.csv", "\n".join(rows).encode(), "text/csv")
    summary = processed.summary
    assert summary["column_count"] == width
    assert len(summary["columns"]) == csv_file.MAX_COLUMNS
    assert summary["columns"][-1] == {"name": "name199", "type": "integer"}
    assert all(len(row) == csv_file.MAX_COLUMNS for row in summary["sample_rows"])


def test_csv_long_fields_are_read_and_the_limit_put_back(tmp_path: Path) -> None:
    before = csv.field_size_limit()
    long = "y" * 500_000  # past csv's default limit of 128 KiB
    content = f'id,text,n\n1,"{long}",2\n2,{"9" * 300},3\n'
    processed, _ = run(tmp_path, "long.csv", content.encode(), "text/csv")
    summary = processed.summary
    assert summary["rows"] == 2
    assert summary["sample_rows"][0][1] == "y" * csv_file.CELL_CHARS
    # Too long to be a number: typed as text without the patterns run over it.
    assert [column["type"] for column in summary["columns"]] == ["integer", "string", "integer"]
    assert csv.field_size_limit() == before


# JSON


def test_json_object(tmp_path: Path) -> None:
    document = {f"key{i}": i for i in range(150)} | {"nested": {"a": [1, 2]}}
    processed, _ = run(tmp_path, "data.json", json.dumps(document).encode())
    summary = processed.summary
    assert processed.kind == "json"
    assert summary["valid"] is True
    assert summary["parsed"] is True
    assert summary["top_level_type"] == "object"
    assert summary["key_count"] == 151
    assert summary["keys"][:2] == ["key0", "key1"]
    assert len(summary["keys"]) == 100


def test_json_array(tmp_path: Path) -> None:
    document = [1, 2.5, "three", None, True, {"a": 1}, [1]]
    processed, _ = run(tmp_path, "list.json", json.dumps(document).encode())
    summary = processed.summary
    assert summary["top_level_type"] == "array"
    assert summary["length"] == 7
    assert summary["element_types"] == [
        "number",
        "number",
        "string",
        "null",
        "boolean",
        "object",
        "array",
    ]


def test_invalid_json_is_a_result(tmp_path: Path) -> None:
    content = '{\n  "name": "Ada",\n  "age": ,\n  "city": "London"\n}\n'
    processed, _ = run(tmp_path, "broken.json", content.encode())
    assert processed.kind == "json"
    assert processed.summary["valid"] is False
    assert processed.summary["error"] == {"line": 3, "column": 10, "message": "Expecting value"}


def test_large_json_is_not_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(json_file, "MAX_PARSE_BYTES", 1024)
    content = json.dumps([{"id": i} for i in range(500)]).encode()
    processed, _ = run(tmp_path, "big.json", content)
    summary = processed.summary
    assert summary["parsed"] is False
    assert summary["valid"] is None
    assert summary["top_level_type"] == "array"
    assert summary["size"] == len(content)
    assert "only the start was read" in summary["reason"]


def json_of_empty_items(item: str, size: int) -> bytes:
    """An array of `item` ({} or []) as long as fits in `size` bytes: the JSON that
    takes most memory per byte once parsed, short of deep nesting."""
    count = (size - 2) // (len(item) + 1)
    return b"[" + b",".join([item.encode()] * count) + b"]"


def test_json_over_the_limit_is_not_parsed(tmp_path: Path) -> None:
    data = json_of_empty_items("{}", json_file.MAX_PARSE_BYTES + 8)
    assert len(data) > json_file.MAX_PARSE_BYTES
    processed, _ = run(tmp_path, "many.json", data)
    assert processed.summary["parsed"] is False
    assert processed.summary["reason"] == "larger than 4 MiB: only the start was read"


@pytest.mark.parametrize("item", ["{}", "[]"])
def test_json_parse_at_the_limit_stays_bounded(tmp_path: Path, item: str) -> None:
    path = tmp_path / "many.json"
    path.write_bytes(json_of_empty_items(item, json_file.MAX_PARSE_BYTES))
    outcome, grown = peak_growth(path, "application/json")
    assert outcome == "json"
    assert grown < 160  # MiB; measured about 105 (and 1.6 GB for 63 MiB before)


# PDF


def make_pdf(words: list[str], **encryption: str) -> bytes:
    pdf = FPDF()
    pdf.set_title("Quarterly Report")
    pdf.set_author("Zoë Writer")
    pdf.set_font("helvetica", size=14)
    if encryption:
        pdf.set_encryption(**encryption)  # type: ignore[arg-type]
    for number, word in enumerate(words, start=1):
        pdf.add_page()
        pdf.cell(text=f"Page {number} says {word}")
    return bytes(pdf.output())


def test_pdf(tmp_path: Path) -> None:
    words = ["aardvark", "butterfly", "crocodile"]
    processed, recorder = run(tmp_path, "report.pdf", make_pdf(words))
    assert processed.kind == "pdf"
    summary = processed.summary
    assert summary["pages"] == 3
    assert summary["metadata"]["title"] == "Quarterly Report"
    assert summary["metadata"]["author"] == "Zoë Writer"
    assert summary["metadata"]["created"].startswith("20")  # ISO 8601
    assert summary["pages_failed"] == []
    assert summary["pages_without_text"] == 0
    assert [fraction for fraction, _ in recorder.calls] == pytest.approx([1 / 3, 2 / 3, 1])
    [derived] = processed.derived
    assert (derived.name, derived.content_type) == ("text.txt", "text/plain; charset=utf-8")
    extracted = derived.path.read_text(encoding="utf-8")
    assert all(word in extracted for word in words)
    assert extracted.count("\f") == 2  # one page after another
    assert summary["characters"] == len(extracted) - 2


def test_pdf_encrypted_for_permissions_only_opens(tmp_path: Path) -> None:
    data = make_pdf(["secret"], owner_password="owner")
    processed, _ = run(tmp_path, "locked.pdf", data)
    assert "secret" in processed.derived[0].path.read_text(encoding="utf-8")


def test_pdf_with_a_password_is_unsupported(tmp_path: Path) -> None:
    data = make_pdf(["secret"], owner_password="owner", user_password="user")
    assert failure(tmp_path, "locked.pdf", data).startswith("unsupported_file: ")


def test_truncated_pdf_is_corrupt(tmp_path: Path) -> None:
    data = make_pdf(["one", "two", "three"])
    error = failure(tmp_path, "cut.pdf", data[: len(data) // 2])
    assert error.startswith("corrupt_file: Could not read the PDF")


# Images


def make_image(fmt: str, size: tuple[int, int], orientation: int = 1) -> bytes:
    image = Image.new("RGB", size, (200, 40, 40))
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"  # Make
    exif[0x0132] = "2024:01:02 10:00:00"  # DateTime
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, fmt, exif=exif)
    return buffer.getvalue()


def thumbnail(processed: Processed) -> Image.Image:
    [derived] = processed.derived
    assert (derived.name, derived.content_type) == ("thumbnail.png", "image/png")
    image = Image.open(derived.path)
    image.load()
    assert image.format == "PNG"
    assert max(image.size) <= 256
    assert len(image.getexif()) == 0
    assert not {"exif", "icc_profile", "xmp", "XML:com.adobe.xmp"} & set(image.info)
    return image


def test_png(tmp_path: Path) -> None:
    processed, _ = run(tmp_path, "picture.png", make_image("PNG", (640, 480)))
    assert processed.kind == "image"
    summary = processed.summary
    assert (summary["format"], summary["width"], summary["height"]) == ("PNG", 640, 480)
    assert (summary["mode"], summary["animated"], summary["frames"]) == ("RGB", False, 1)
    assert thumbnail(processed).size == (256, 192)
    assert summary["thumbnail"] == {"width": 256, "height": 192}


def test_jpeg_thumbnail_is_upright_and_without_exif(tmp_path: Path) -> None:
    # Orientation 6: the camera was turned; viewers show the picture 600 wide, 800 high.
    data = make_image("JPEG", (800, 600), orientation=6)
    assert Image.open(io.BytesIO(data)).getexif()[0x010F] == "CameraMaker"
    processed, _ = run(tmp_path, "photo.jpg", data)
    summary = processed.summary
    assert (summary["format"], summary["width"], summary["height"]) == ("JPEG", 800, 600)
    assert thumbnail(processed).size == (192, 256)


def test_animated_gif(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (40, 30), colour) for colour in ("red", "green", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100)
    processed, _ = run(tmp_path, "anim.gif", buffer.getvalue())
    assert (processed.summary["animated"], processed.summary["frames"]) == (True, 3)
    assert thumbnail(processed).size == (40, 30)  # never enlarged


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[: len(data) // 2], id="truncated"),
        pytest.param(lambda data: data[:40] + b"\x00" * 40 + data[80:], id="overwritten"),
    ],
)
def test_broken_png_is_corrupt(tmp_path: Path, damage: object) -> None:
    data = make_image("PNG", (64, 64))
    broken = damage(data)  # type: ignore[operator]
    error = failure(tmp_path, "broken.png", broken, "image/png")
    assert error.startswith("corrupt_file: Could not read the PNG image")


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def make_png(width: int, height: int, rows: int | None = None, extra: bytes = b"") -> bytes:
    """An RGBA PNG of one colour, made without holding its pixels; with `rows`, only
    that many rows of image data (enough to open, not to decode). `extra`: chunks
    put after the image data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    compressor = zlib.compressobj(1)
    row = bytes(1 + width * 4)
    count = height if rows is None else rows
    data = b"".join(compressor.compress(row) for _ in range(count)) + compressor.flush()
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", data)
        + extra
        + png_chunk(b"IEND", b"")
    )


def test_image_over_the_pixel_limit_is_refused_before_decoding(tmp_path: Path) -> None:
    data = make_png(10_000, 6_000, rows=1)  # 60 Mpx: under Pillow's limit, over ours
    error = failure(tmp_path, "huge.png", data)
    assert error == (
        "unsupported_file: The image has more pixels (10,000 × 6,000) than Conveyor "
        "processes (50,000,000; the limit bounds the memory a decoded image takes)"
    )


def test_pixel_limit_is_on_what_is_decoded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A JPEG is decoded at a reduced scale where the thumbnail allows: 2400 × 2000 at a
    # half, 1.2 Mpx. A PNG is decoded whole.
    monkeypatch.setattr(image, "MAX_PIXELS", 2_000_000)
    picture = Image.new("RGB", (2400, 2000), (10, 120, 200))
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG")
    processed, _ = run(tmp_path, "photo.jpg", buffer.getvalue())
    assert (processed.summary["width"], processed.summary["height"]) == (2400, 2000)
    buffer = io.BytesIO()
    picture.save(buffer, "PNG", compress_level=1)
    error = failure(tmp_path, "picture.png", buffer.getvalue())
    assert error.startswith("unsupported_file: The image has more pixels (2,400 × 2,000)")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("pillow_too", [False, True])  # ours; Pillow's, at twice its own
def test_decompression_bombs_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pillow_too: bool
) -> None:
    monkeypatch.setattr(image, "MAX_PIXELS", 100)
    if pillow_too:
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    data = make_image("PNG", (20, 20))
    error = failure(tmp_path, "bomb.png", data)
    assert error.startswith("unsupported_file: The image has more pixels")


def test_decoding_makes_no_full_size_copy(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    path.write_bytes(make_png(4000, 3000))
    decoded = 4000 * 3000 * 4 / (1 << 20)  # 46 MiB of RGBA
    outcome, grown = peak_growth(path, "image/png")
    assert outcome == "image"
    # Measured 79 MiB; with a copy for each conversion, as before, 160 and more.
    assert grown < decoded + 48


def test_progressive_jpeg_within_the_pixel_limit_can_cost_too_much(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # libjpeg holds a progressive JPEG's coefficients whole: 2 bytes a pixel a component.
    monkeypatch.setattr(image, "MAX_DECODE_BYTES", 5 << 20)
    picture = Image.new("RGB", (1000, 1000), (10, 120, 200))
    for progressive, subsampling in [(False, 0), (True, 2)]:  # 0 MiB; 2.9 MiB
        buffer = io.BytesIO()
        picture.save(buffer, "JPEG", progressive=progressive, subsampling=subsampling)
        run(tmp_path, "fine.jpg", buffer.getvalue())
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", progressive=True, subsampling=0)  # 4:4:4, 5.7 MiB
    error = failure(tmp_path, "costly.jpg", buffer.getvalue())
    assert error == (
        "unsupported_file: The JPEG image (1,000 × 1,000) would take 5 MiB to decode, "
        "more than Conveyor allows (5 MiB)"
    )


def test_webp_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = make_image("WEBP", (300, 200))
    monkeypatch.setattr(image, "MAX_DECODE_BYTES", 300 * 200 * 16)  # less the file
    assert failure(tmp_path, "pic.webp", data).startswith(
        "unsupported_file: The WEBP image (300 × 200) would take "
    )
    monkeypatch.setattr(image, "MAX_WEBP_FILE_BYTES", len(data) - 1)
    assert failure(tmp_path, "pic.webp", data).startswith(
        "unsupported_file: WebP images larger than "
    )


def jpeg_with(segments: bytes) -> bytes:
    """A small JPEG with `segments` put right after its start marker."""
    data = make_image("JPEG", (16, 16))
    return data[:2] + segments + data[2:]


def segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


def gif_with_comment(size: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("P", (8, 8)).save(buffer, "GIF")
    data = buffer.getvalue()
    blocks = b"".join(b"\xff" + b"c" * 255 for _ in range(size // 255 + 1))
    return data[:-1] + b"!\xfe" + blocks + b"\x00;"


@pytest.mark.parametrize(
    ("name", "make"),
    [
        pytest.param(
            "meta.png",
            lambda size: make_png(8, 8, extra=png_chunk(b"prVt", bytes(size))),
            id="png-private-chunk-after-the-image",
        ),
        pytest.param(
            "meta.jpg",
            lambda size: jpeg_with(segment(0xE5, bytes(60_000)) * (size // 60_000 + 1)),
            id="jpeg-app-segments",
        ),
        pytest.param("meta.gif", gif_with_comment, id="gif-comment"),
    ],
)
def test_images_with_bulky_metadata_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, make: Callable[[int], bytes]
) -> None:
    limit = 1 << 20
    monkeypatch.setattr(image_headers, "MAX_METADATA_BYTES", limit)
    run(tmp_path, name, make(limit // 2))
    error = failure(tmp_path, name, make(limit))
    assert error.startswith("unsupported_file: The ")
    assert error.endswith(
        "image carries more than 1 MiB of metadata (EXIF, ICC profile, comments and the "
        "like); Conveyor does not process such files"
    )


@pytest.mark.parametrize(("in_scan", "partial"), [(3, False), (1, True)])
def test_jpeg_scan_of_some_components_is_seen(in_scan: int, partial: bool) -> None:
    # libjpeg then holds all the coefficients, as for a progressive JPEG.
    frame = segment(0xC0, struct.pack(">BHHB", 8, 64, 64, 3) + b"\x01\x11\x00" * 3)
    scan = segment(0xDA, bytes([in_scan]) + b"\x01\x00" * in_scan + b"\x00\x3f\x00")
    app = segment(0xE1, b"Exif\x00\x00")
    file = io.BytesIO(b"\xff\xd8" + app + frame + scan)
    metadata = len(app) - 2 + len(frame) - 2  # as a segment counts: without its marker
    assert image_headers.read(file, "JPEG") == image_headers.Headers(metadata, partial)


def test_jpeg_frame_header_spam_is_corrupt(tmp_path: Path) -> None:
    # Pillow keeps a tuple for every 3 bytes of every frame header: 30 times the file.
    frame = struct.pack(">BHHB", 8, 16, 16, 3) + b"\x01\x11\x00" * 20_000
    error = failure(tmp_path, "frames.jpg", jpeg_with(segment(0xC0, frame) * 3))
    assert error == "corrupt_file: Could not read the JPEG image: its frame header is malformed"


# Everything else


def test_random_bytes_are_unsupported(tmp_path: Path) -> None:
    noise = random.Random(5).randbytes(10_000)
    error = failure(tmp_path, "mystery.bin", noise)
    assert error.startswith(
        "unsupported_file: application/octet-stream is not a type Conveyor processes"
    )


def test_zip_is_unsupported(tmp_path: Path) -> None:
    error = failure(tmp_path, "archive.zip", b"PK\x03\x04" + b"\x00" * 100)
    assert error.startswith("unsupported_file: application/zip is not a type")


def test_derived_names_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="derived name"):
        Derived("../Thumbnail.PNG", tmp_path / "x", "image/png")
