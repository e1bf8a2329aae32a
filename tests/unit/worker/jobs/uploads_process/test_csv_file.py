"""CSV: dialect, header and column types, with rows and fields bounded."""

from __future__ import annotations

import csv
from pathlib import Path

from tests.support.processing import failure, peak_growth, run
from worker.jobs.uploads_process import csv_file


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
