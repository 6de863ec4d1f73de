"""A bad policy file stops start-up with one error naming the file, the field and the reason."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import pytest

from server.storage_policies import PolicyFileError, load_policies
from server.storage_policies.models import (
    AgeBand,
    ProvisionType,
    RecordingKind,
    all_combinations,
)

SHIPPED = Path(__file__).resolve().parents[2] / "storage_policies"

GOOD = """\
[purpose]
id = "everything"
name = "Every recording"
description = "Covers every recording so the coverage check passes."

[applies_to]
priority = 1

[retention]
[[retention.keep_until_latest_of]]
after = "session"
days = 28

[lawful_basis]
article_6 = "6(1)(e)"
article_6_reason = "Public task."
article_9 = "9(2)(h)"
article_9_reason = "Health care."

[erasure_request]
action = "erase"
reason = "No exemption applies."

[access]
roles = ["manager"]

[data]
subjects = ["clients"]
categories = ["video"]

[review]
next_review = 2027-04-01
sources = ["a test"]
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def error_for(folder: Path) -> PolicyFileError:
    with pytest.raises(PolicyFileError) as err:
        load_policies(folder)
    return err.value


def test_shipped_folder_loads_and_covers_every_combination() -> None:
    policies = load_policies(SHIPPED)
    assert {p.id for p in policies} == {
        "tuition-monitoring",
        "therapy-children",
        "therapy-adults",
        "safeguarding-concern",
    }
    combos = list(all_combinations())
    assert len(combos) == len(RecordingKind) * len(AgeBand) * len(ProvisionType) * 2 == 32
    for kind, age, provision, flagged in combos:
        found = policies.matching(kind, age, provision, flagged)
        assert found, (kind, age, provision, flagged)
        assert len(found) == 1 or found[0].priority > found[1].priority
        assert (found[0].id == "safeguarding-concern") == flagged


def test_shipped_policies_cite_their_sources_and_need_review() -> None:
    for policy in load_policies(SHIPPED):
        assert policy.sources
        text = (SHIPPED / policy.source_file).read_text()
        assert "Source" in text or "source" in text  # a comment explains where the period comes from
        assert policy.next_review.year >= 2026


def test_minimal_good_file_loads(tmp_path: Path) -> None:
    write(tmp_path, "all.toml", GOOD)
    write(tmp_path, "README.md", "not a policy")  # other files are ignored
    assert [p.id for p in load_policies(tmp_path)] == ["everything"]


@pytest.mark.parametrize(
    ("old", "new", "field", "reason"),
    [
        ('id = "everything"', 'id = "everything"\ncolour = "blue"', "purpose.colour", "unknown key"),
        ("[review]", "[reveiw]", "reveiw", "unknown key"),
        ('name = "Every recording"\n', "", "purpose.name", "missing field"),
        ('roles = ["manager"]', "", "access.roles", "missing field"),
        ("days = 28", "days = -3", "retention.keep_until_latest_of[0].days", "out of range"),
        ("days = 28", 'days = "28"', "retention.keep_until_latest_of[0].days", "not a whole number"),
        (
            "days = 28",
            "days = 0",
            "retention.keep_until_latest_of[0]",
            "at least one of years, months or days",
        ),
        (
            'after = "session"',
            'after = "death"',
            "retention.keep_until_latest_of[0].after",
            "'death' is not one of",
        ),
        ("days = 28", "days = 28\nweeks = 4", "retention.keep_until_latest_of[0].weeks", "unknown key"),
        (
            "days = 28",
            "days = 28\nwhen_age_at_last_session = 17",
            "retention.keep_until_latest_of",
            "every entry is conditional",
        ),
        (
            '[retention]\n[[retention.keep_until_latest_of]]\nafter = "session"\ndays = 28\n',
            '[retention]\nat_end = "erase"\n',
            "retention.keep_until_latest_of",
            "missing field",
        ),
        ("[retention]", '[retention]\nat_end = "archive"', "retention.at_end", "not 'erase' or 'review'"),
        ("next_review = 2027-04-01", 'next_review = "next April"', "review.next_review", "is not a date"),
        (
            "next_review = 2027-04-01",
            "next_review = 2027-04-01T09:00:00",
            "review.next_review",
            "is not a date",
        ),
        ("next_review = 2027-04-01", "", "review.next_review", "missing field"),
        ("priority = 1", 'priority = 1\nkinds = ["lessons"]', "applies_to.kinds", "'lessons' is not one of"),
        (
            "priority = 1",
            'priority = 1\nflagged_for_safeguarding = ["yes"]',
            "applies_to.flagged_for_safeguarding",
            "is not one of",
        ),
        ("priority = 1", 'priority = "high"', "applies_to.priority", "not a whole number"),
        (
            'roles = ["manager"]',
            'roles = ["manager", "janitor"]',
            "access.roles",
            "'janitor' is not a staff role",
        ),
        (
            'article_6 = "6(1)(e)"',
            'article_6 = "legitimate interests"',
            "lawful_basis.article_6",
            "not a UK GDPR Art. 6 basis",
        ),
        ('article_9 = "9(2)(h)"', 'article_9 = "9(2)(z)"', "lawful_basis.article_9", "not a UK GDPR Art. 9"),
        (
            'article_9 = "9(2)(h)"\narticle_9_reason = "Health care."\n',
            "",
            "lawful_basis.article_9",
            "therapy recordings are health data",
        ),
        ('id = "everything"', 'id = "Everything Else"', "purpose.id", "lower-case"),
        (
            '[access]\nroles = ["manager"]',
            "[access.roles]\nmanager = true",
            "access.roles",
            "must be a non-empty list",
        ),
        ('[access]\nroles = ["manager"]', "", "access", "missing table"),
        ('action = "erase"', 'action = "archive"', "erasure_request.action", "not 'erase' or 'keep'"),
        ('action = "erase"', 'action = "keep"', "erasure_request.reason", "Art. 17(3) exemption"),
        ('reason = "No exemption applies."', "", "erasure_request.reason", "missing field"),
        ('[erasure_request]\naction = "erase"\nreason = "No exemption applies."\n', "", "erasure_request",
         "missing table"),
    ],
)
def test_each_mistake_names_file_field_and_reason(
    tmp_path: Path, old: str, new: str, field: str, reason: str
) -> None:
    assert old in GOOD
    write(tmp_path, "bad.toml", GOOD.replace(old, new, 1))
    err = error_for(tmp_path)
    assert err.file == "bad.toml"
    assert err.field == field
    assert reason in err.reason
    assert err.detail.startswith(f"bad.toml: {field}: ")
    assert err.status == 422  # an InvalidInput: the CLI prints the detail as one line


def test_toml_syntax_error_gives_the_line_number(tmp_path: Path) -> None:
    write(tmp_path, "broken.toml", GOOD.replace('name = "Every recording"', 'name = "Every recording'))
    err = error_for(tmp_path)
    assert err.file == "broken.toml"
    assert "not valid TOML" in err.reason
    assert "line 3" in err.reason


def test_overlapping_purposes_with_equal_priority_are_refused(tmp_path: Path) -> None:
    write(tmp_path, "a.toml", GOOD)
    write(tmp_path, "b.toml", GOOD.replace('id = "everything"', 'id = "also-everything"'))
    err = error_for(tmp_path)
    assert err.file in {"a.toml", "b.toml"}
    assert err.field == "applies_to.priority"
    assert "overlaps" in err.reason and "same priority 1" in err.reason


def test_overlap_with_different_priorities_is_allowed_and_higher_wins(tmp_path: Path) -> None:
    write(tmp_path, "a.toml", GOOD)
    write(
        tmp_path,
        "b.toml",
        GOOD.replace('id = "everything"', 'id = "flagged"').replace(
            "priority = 1", "priority = 5\nflagged_for_safeguarding = [true]"
        ),
    )
    policies = load_policies(tmp_path)
    assert (
        policies.matching(RecordingKind.TUITION, AgeBand.ADULT, ProvisionType.BLENDED, True)[0].id
        == "flagged"
    )
    assert (
        policies.matching(RecordingKind.TUITION, AgeBand.ADULT, ProvisionType.BLENDED, False)[0].id
        == "everything"
    )


def test_a_policy_that_can_never_win_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "a.toml", GOOD.replace("priority = 1", "priority = 50"))
    write(
        tmp_path,
        "shadowed.toml",
        GOOD.replace('id = "everything"', 'id = "shadowed"').replace(
            "priority = 1", 'priority = 5\nkinds = ["tuition"]'
        ),
    )
    err = error_for(tmp_path)
    assert (err.file, err.field) == ("shadowed.toml", "applies_to")
    assert "is never chosen" in err.reason


def test_duplicate_purpose_ids_are_refused(tmp_path: Path) -> None:
    write(tmp_path, "a.toml", GOOD)
    write(tmp_path, "b.toml", GOOD.replace("priority = 1", "priority = 2"))
    err = error_for(tmp_path)
    assert (err.file, err.field) == ("b.toml", "purpose.id")
    assert "already the id of a.toml" in err.reason


def test_a_recording_no_policy_covers_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "tuition.toml", GOOD.replace("priority = 1", 'priority = 1\nkinds = ["tuition"]'))
    err = error_for(tmp_path)
    assert err.field == "applies_to"
    assert "no policy covers a therapy recording" in err.reason


def test_removing_any_shipped_file_breaks_coverage(tmp_path: Path) -> None:
    shipped = sorted(SHIPPED.glob("*.toml"))
    for left_out in shipped:
        folder = tmp_path / left_out.stem
        folder.mkdir()
        for f in shipped:
            if f != left_out:
                shutil.copy(f, folder / f.name)
        if left_out.name == "safeguarding_concern.toml":
            # Without it flagged recordings fall back to their ordinary purpose: covered, so it loads.
            load_policies(folder)
        else:
            assert "no policy covers" in error_for(folder).reason


def test_empty_or_missing_folder_is_refused(tmp_path: Path) -> None:
    assert "contains no *.toml" in error_for(tmp_path).reason
    assert "is not a folder" in error_for(tmp_path / "nope").reason


def test_non_utf8_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "latin.toml").write_bytes(GOOD.encode() + b"# caf\xe9\n")
    err = error_for(tmp_path)
    assert (err.file, err.reason) == ("latin.toml", "is not UTF-8 text")


def test_error_is_the_first_problem_only(tmp_path: Path) -> None:
    # Two bad files: one error, for the first file in name order.
    write(tmp_path, "a.toml", GOOD.replace("days = 28", "days = -1"))
    write(tmp_path, "b.toml", GOOD.replace("[review]", "[reveiw]"))
    assert error_for(tmp_path).file == "a.toml"


def test_all_combinations_lists_each_case_once() -> None:
    combos = list(all_combinations())
    assert len(set(combos)) == len(combos)
    assert set(combos) == set(itertools.product(RecordingKind, AgeBand, ProvisionType, (False, True)))
