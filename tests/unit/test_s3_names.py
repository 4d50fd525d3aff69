"""openlookout.core.s3_names: S3's bucket-name rules, and keys that cannot leave a bucket's folder."""

from __future__ import annotations

import ntpath
import posixpath

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openlookout.core.errors import ValidationException
from openlookout.core.s3_names import bucket_name_problem, check_location, key_problem


@pytest.mark.parametrize(
    "name", ["my-images", "a.b.c", "openlookout-artifacts-000000000000-us-east-1", "abc", "1bucket"]
)
def test_valid_bucket_names(name: str) -> None:
    assert bucket_name_problem(name) is None


@pytest.mark.parametrize(
    "name",
    [
        "..",
        ".",
        "ab",
        "Upper",
        "under_score",
        "-start",
        "end-",
        "a..b",
        "192.168.1.1",
        "x" * 64,
        "a/b",
        "xn--abc",
    ],
)
def test_invalid_bucket_names(name: str) -> None:
    assert bucket_name_problem(name)


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.sampled_from(["..", ".", "a", "b.c", "..d", "/", "\\", "%2F", "~"]), max_size=12).map("".join)
)
def test_an_accepted_key_stays_inside_the_bucket_folder_on_posix_and_windows(key: str) -> None:
    if key_problem(key) is not None:
        return
    for module, root in ((posixpath, "/data/s3/bucket"), (ntpath, "C:\\data\\s3\\bucket")):
        joined = module.normpath(module.join(root, key.lstrip("/\\")))
        assert joined == root or joined.startswith(root + module.sep), (key, joined)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_key_is_accepted_or_refused_with_a_reason(key: str) -> None:
    problem = key_problem(key)
    assert problem is None or problem.startswith(("is longer", "contains"))


def test_locations_are_l4v_validation_errors() -> None:
    with pytest.raises(ValidationException, match=r"s3://b-1/\.\./x.manifest has a key that contains"):
        check_location("b-1", "../x.manifest", "manifest")
    with pytest.raises(ValidationException, match="invalid bucket name"):
        check_location("..", "x", "manifest")
    check_location("b-1", "folder/x.manifest", "manifest")
