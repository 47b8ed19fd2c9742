"""Submission files: every malformed input is refused with a message naming file and reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from flukeid import NEW_WHALE
from flukeid.data.submission import (
    read_answers,
    read_submission,
    score_submission,
    write_submission,
)
from flukeid.errors import SubmissionError


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _refused(path: Path, *fragments: str, **kwargs: object) -> None:
    """Assert read_submission refuses `path` with a message holding its name and `fragments`."""
    with pytest.raises(SubmissionError) as caught:
        read_submission(path, **kwargs)  # type: ignore[arg-type]
    message = str(caught.value)
    assert path.name in message
    for fragment in fragments:
        assert fragment in message


def test_reads_labels_best_first(tmp_path: Path) -> None:
    path = _write(tmp_path / "sub.csv", "Id,Image\nnew_whale w_1,a.jpg\nw_2,b.jpg\n\n")
    assert read_submission(path) == {"a.jpg": [NEW_WHALE, "w_1"], "b.jpg": ["w_2"]}


def test_missing_file(tmp_path: Path) -> None:
    _refused(tmp_path / "nope.csv", "not found")


@pytest.mark.parametrize("header", ["Image,Label", "Image", "Image,Id,Score", "Image,Id,Id", ""])
def test_bad_header(tmp_path: Path, header: str) -> None:
    path = _write(tmp_path / "sub.csv", f"{header}\n")
    _refused(path, "header must be the columns Image,Id")


def test_row_with_wrong_number_of_cells(tmp_path: Path) -> None:
    path = _write(tmp_path / "sub.csv", "Image,Id\na.jpg,w_1\nb.jpg,w_1,extra\n")
    _refused(path, "line 3")


def test_empty_image(tmp_path: Path) -> None:
    path = _write(tmp_path / "sub.csv", "Image,Id\na.jpg,w_1\n,w_2\n")
    _refused(path, "empty Image", "line 3")


def test_duplicate_images(tmp_path: Path) -> None:
    path = _write(tmp_path / "sub.csv", "Image,Id\na.jpg,w_1\nb.jpg,w_1\na.jpg,w_2\n")
    _refused(path, "duplicate images", "a.jpg (lines 2 and 4)")


def test_too_many_labels(tmp_path: Path) -> None:
    path = _write(tmp_path / "sub.csv", "Image,Id\na.jpg,w_1 w_2 w_3 w_4 w_5 w_6\n")
    _refused(path, "too many labels (at most 5)", "line 2 (6 labels)")
    _refused(path, "too many labels (at most 3)", k=3)


def test_empty_id(tmp_path: Path) -> None:
    path = _write(tmp_path / "sub.csv", "Image,Id\na.jpg,\nb.jpg,  \n")
    _refused(path, "empty Id", "line 2, line 3")


def test_many_problems_show_five_examples_and_the_count(tmp_path: Path) -> None:
    rows = "".join(f"{i}.jpg,\n" for i in range(12))
    path = _write(tmp_path / "sub.csv", "Image,Id\n" + rows)
    _refused(path, "line 2, line 3, line 4, line 5, line 6, ... (12 in all)")


def test_missing_and_extra_images(tmp_path: Path) -> None:
    path = _write(tmp_path / "sub.csv", "Image,Id\na.jpg,w_1\nz.jpg,w_1\n")
    expected = {"a.jpg", "b.jpg", "c.jpg"}
    _refused(path, "2 expected images missing: b.jpg, c.jpg", expected_images=expected)
    _refused(path, "1 images not in the expected set: z.jpg", expected_images=expected)


def test_read_answers_defaults_identity_to_id(tmp_path: Path) -> None:
    path = _write(tmp_path / "answers.csv", "Image,Id,Individual\na.jpg,w_1,\nb.jpg,new_whale,w_9\n")
    answers = read_answers(path)
    assert answers.ids == {"a.jpg": "w_1", "b.jpg": NEW_WHALE}
    assert answers.identities == {"a.jpg": "w_1", "b.jpg": "w_9"}
    assert read_answers(_write(tmp_path / "plain.csv", "Image,Id\na.jpg,w_1\n")).identities == {"a.jpg": "w_1"}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Image,Label\na.jpg,w_1\n", "header must be the columns Image,Id (optional: Individual,Source)"),
        ("Image,Id\na.jpg,w_1\na.jpg,w_2\n", "duplicate images"),
        ("Image,Id\na.jpg,w_1 w_2\n", "too many labels (at most 1)"),
        ("Image,Id\na.jpg,\n", "empty Id"),
    ],
)
def test_read_answers_refuses_bad_files(tmp_path: Path, text: str, reason: str) -> None:
    path = _write(tmp_path / "answers.csv", text)
    with pytest.raises(SubmissionError, match=r"answers\.csv") as caught:
        read_answers(path)
    assert reason in str(caught.value)


def test_write_refuses_labels_that_would_not_read_back(tmp_path: Path) -> None:
    with pytest.raises(SubmissionError, match="whitespace"):
        write_submission(tmp_path / "sub.csv", {"a.jpg": ["w 1"]})
    with pytest.raises(SubmissionError, match="no labels"):
        write_submission(tmp_path / "sub.csv", {"a.jpg": []})
    assert list(tmp_path.iterdir()) == []


def test_round_trip_write_read_score(tmp_path: Path) -> None:
    predictions = {
        "c.jpg": ["w_3", NEW_WHALE],
        "a.jpg": ["w_1", "w_2"],
        "b.jpg": [NEW_WHALE, "w_1", "w_2", "w_3", "w_2"],
    }
    submission = tmp_path / "sub.csv"
    write_submission(submission, predictions)
    assert submission.read_text().splitlines()[:2] == ["Image,Id", "c.jpg,w_3 new_whale"]
    assert read_submission(submission) == predictions
    assert list(read_submission(submission)) == ["c.jpg", "a.jpg", "b.jpg"]
    answers = _write(tmp_path / "answers.csv", "Image,Id\na.jpg,w_2\nb.jpg,w_3\nc.jpg,new_whale\n")
    # a: w_2 at rank 2 -> 1/2; b: w_3 at rank 4 -> 1/4; c: new_whale at rank 2 -> 1/2
    # MAP@5 = (1/2 + 1/4 + 1/2) / 3 = 5/12
    assert score_submission(submission, answers) == pytest.approx(5 / 12)
    # overwriting leaves no temporary file behind
    write_submission(submission, predictions)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["answers.csv", "sub.csv"]


def test_score_refuses_submission_missing_an_answer_image(tmp_path: Path) -> None:
    submission = tmp_path / "sub.csv"
    write_submission(submission, {"a.jpg": ["w_1"]})
    answers = _write(tmp_path / "answers.csv", "Image,Id\na.jpg,w_1\nb.jpg,w_2\n")
    with pytest.raises(SubmissionError, match=r"sub\.csv: 1 expected images missing: b\.jpg"):
        score_submission(submission, answers)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "the file is empty (0 bytes)"),
        (bytes(range(256)) * 4, "NUL bytes (first on line 1)"),
        (b"Image,Id\na.jpg,w\x001\n", "NUL bytes (first on line 2)"),
        (b"Image,Id\na.jpg,w\xe91\n", "not UTF-8 text (byte 0xe9 on line 2)"),
        (b"\x89PNG\r\n\x1a\n" + b"\xff" * 64, "not UTF-8 text (byte 0x89 on line 1)"),
        ("Image,Id\na.jpg,w_1\n".encode("utf-16"), "is UTF-16 text"),
        (b'Image,Id\na.jpg,"' + b"x" * 200_000 + b'"\n', "not a readable CSV at line 2 (field larger"),
    ],
    ids=["empty", "binary", "nul", "latin-1", "png", "utf-16", "huge-field"],
)
def test_unreadable_files_are_refused_with_the_reason(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "sub.csv"
    path.write_bytes(content)
    _refused(path, reason)
    with pytest.raises(SubmissionError, match=r"sub\.csv") as caught:
        read_answers(path)
    assert reason in str(caught.value)


def test_a_folder_is_not_a_csv(tmp_path: Path) -> None:
    (tmp_path / "sub.csv").mkdir()
    _refused(tmp_path / "sub.csv", "is a folder, not a CSV file")


def test_score_refuses_answers_without_rows(tmp_path: Path) -> None:
    submission = _write(tmp_path / "sub.csv", "Image,Id\n")
    answers = _write(tmp_path / "answers.csv", "Image,Id\n")
    with pytest.raises(SubmissionError, match=r"answers\.csv: no answer rows after the header"):
        score_submission(submission, answers)
