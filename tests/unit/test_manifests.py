"""Ground Truth manifest lines: what becomes an entry, and the reason a line is refused."""

import json

import pytest

from openlookout.services.image_checks import ImageRuleError, NeedMoreBytes, inspect_header
from openlookout.services.manifests import (
    ANOMALY,
    NORMAL,
    ManifestLineError,
    numbered_lines,
    parse_line,
)


def classification(source: str = "s3://bucket/img/a.jpg", class_name: str = "anomaly", value: object = 1):
    return {
        "source-ref": source,
        "anomaly-label": value,
        "anomaly-label-metadata": {
            "confidence": 1,
            "job-name": "labeling-job/cookies",
            "class-name": class_name,
            "human-annotated": "yes",
            "creation-date": "2022-08-22T20:52:51.851",
            "type": "groundtruth/image-classification",
        },
    }


def segmentation(color_map: dict, mask: str = "s3://bucket/masks/a.png") -> dict:
    line = classification()
    line["anomaly-mask-ref"] = mask
    line["anomaly-mask-ref-metadata"] = {
        "internal-color-map": color_map,
        "type": "groundtruth/semantic-segmentation",
        "human-annotated": "yes",
        "creation-date": "Mon Aug 22 2022 13:52:52 GMT-0700 (Pacific Daylight Time)",
        "job-name": "labeling-job/segmentation-job",
    }
    return line


def parse(line: dict, number: int = 1):
    return parse_line(number, json.dumps(line))


def refused(text: str, number: int = 7) -> str:
    with pytest.raises(ManifestLineError) as excinfo:
        parse_line(number, text)
    assert excinfo.value.line_number == number
    return excinfo.value.reason


@pytest.mark.parametrize(
    ("class_name", "expected"),
    [("anomaly", ANOMALY), ("normal", NORMAL), ("Anomaly", ANOMALY), (" NORMAL ", NORMAL)],
)
def test_classification_label_comes_from_class_name(class_name, expected):
    entry = parse(classification(class_name=class_name))
    assert entry.anomaly_class == expected
    assert entry.labeled
    assert entry.image.bucket == "bucket" and entry.image.key == "img/a.jpg"
    assert entry.masks == ()


@pytest.mark.parametrize("value", [0, 1, "0", "1"])
def test_label_value_is_ignored_on_input_and_normalised_on_output(value):
    anomaly = json.loads(parse(classification(class_name="anomaly", value=value)).entry)
    normal = json.loads(parse(classification(class_name="normal", value=value)).entry)
    assert anomaly["anomaly-label"] == 1 and normal["anomaly-label"] == 0
    assert anomaly["anomaly-label-metadata"]["job-name"] == "labeling-job/cookies"  # other keys kept


def test_any_label_attribute_name_works():
    line = classification()
    line["auto-label"] = line.pop("anomaly-label")
    line["auto-label-metadata"] = line.pop("anomaly-label-metadata")
    assert parse(line).anomaly_class == ANOMALY


@pytest.mark.parametrize("class_name", ["cracked", "unknown", ""])
def test_other_class_names_leave_the_image_unlabeled(class_name):
    entry = parse(classification(class_name=class_name))
    assert entry.anomaly_class is None and not entry.labeled


def test_a_line_with_only_source_ref_is_an_unlabeled_image():
    entry = parse({"source-ref": "s3://bucket/x.png"})
    assert not entry.labeled and entry.masks == ()


def test_segmentation_with_documented_background_entry():
    entry = parse(
        segmentation(
            {
                "0": {"class-name": "BACKGROUND", "hex-color": "#ffffff", "confidence": 0.0},
                "1": {"class-name": "scratch", "hex-color": "#2ca02c", "confidence": 0.0},
                "2": {"class-name": "dent", "hex-color": "#1f77b4", "confidence": 0.0},
            }
        )
    )
    assert entry.anomaly_class == ANOMALY
    (mask,) = entry.masks
    assert mask.attribute == "anomaly-mask-ref"
    assert mask.location.uri == "s3://bucket/masks/a.png"
    assert mask.anomaly_types == ("scratch", "dent")


def test_aws_getting_started_lines_with_a_defect_class_under_key_0_are_read_leniently():
    entry = parse(segmentation({"0": {"class-name": "cracked", "hex-color": "#23A436"}}))
    assert entry.masks[0].anomaly_types == ("cracked",)


def test_a_white_entry_is_background_whatever_its_name():
    white = {"class-name": "nothing", "hex-color": "#FFFFFF"}
    entry = parse(segmentation({"0": white, "1": {"class-name": "x", "hex-color": "#000001"}}))
    assert entry.masks[0].anomaly_types == ("x",)


def test_broken_json_names_the_line_and_the_column():
    assert refused('{"source-ref": "s3://bucket/a.jpg",', 3).startswith("the line is not valid JSON")


@pytest.mark.parametrize("text", ["[1, 2]", '"text"', "42"])
def test_a_line_must_be_an_object(text):
    assert refused(text) == "the line is not a JSON object."


def test_a_line_without_source_ref_is_refused():
    assert refused(json.dumps({"anomaly-label": 1})) == "the line has no source-ref."


@pytest.mark.parametrize("value", ["bucket/a.jpg", "https://b.s3.amazonaws.com/a", "s3://b/", 5, None])
def test_source_ref_must_be_an_s3_uri(value):
    assert refused(json.dumps({"source-ref": value})).startswith("source-ref must be an S3 URI")


def test_mask_problems_are_named():
    no_map = segmentation({})
    del no_map["anomaly-mask-ref-metadata"]["internal-color-map"]
    assert refused(json.dumps(no_map)) == "anomaly-mask-ref-metadata has no internal-color-map."
    bad_color = segmentation({"1": {"class-name": "scratch", "hex-color": "green"}})
    assert "has no hex-color" in refused(json.dumps(bad_color))
    other_bucket = segmentation({"1": {"class-name": "a", "hex-color": "#000001"}}, mask="s3://other/m.png")
    assert "is not in the image's bucket" in refused(json.dumps(other_bucket))


def test_too_many_anomaly_labels_on_one_image():
    colors = {str(i): {"class-name": f"c{i}", "hex-color": f"#0000{i:02x}"} for i in range(1, 22)}
    assert "at most 20" in refused(json.dumps(segmentation(colors)))


def test_entries_longer_than_the_models_maximum_are_refused():
    line = classification()
    line["note"] = "x" * 9000
    assert "at most 8192" in refused(json.dumps(line))


def test_numbered_lines_counts_blank_lines_and_spans_chunks():
    chunks = [b'{"a":1}\n\n{"b"', b':2}\r\n   \n{"c":3}']
    assert list(numbered_lines(chunks)) == [(1, '{"a":1}'), (3, '{"b":2}'), (5, '{"c":3}')]


def test_numbered_lines_names_a_line_that_is_not_utf8():
    with pytest.raises(ManifestLineError) as excinfo:
        list(numbered_lines([b'{"a":1}\n\xff\xfe\n']))
    assert excinfo.value.line_number == 2


# ------------------------------------------------------------------ image header checks


def _png(width: int, height: int) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height)).save(buffer, "PNG")
    return buffer.getvalue()


def test_header_gives_format_and_size():
    data = _png(100, 80)
    info = inspect_header(data[:64], len(data))
    assert (info.format, info.width, info.height) == ("PNG", 100, 80)


@pytest.mark.parametrize(("size", "message"), [((63, 100), "63x100"), ((100, 4097), "100x4097")])
def test_dimensions_outside_64_to_4096_are_refused(size, message):
    data = _png(*size)
    with pytest.raises(ImageRuleError, match=message):
        inspect_header(data, len(data))


def test_non_images_and_large_files_are_refused():
    with pytest.raises(ImageRuleError, match="is not a PNG or JPEG image"):
        inspect_header(b"hello world", 11)
    with pytest.raises(ImageRuleError, match="the maximum is 8 MB"):
        inspect_header(_png(100, 100), 8 * 1024 * 1024 + 1)
    with pytest.raises(ImageRuleError, match="is a PNG image, not a JPEG"):
        data = _png(100, 100)
        inspect_header(data, len(data), ("JPEG",))


def test_a_cut_header_asks_for_more_bytes():
    data = _png(100, 100)
    with pytest.raises(NeedMoreBytes):
        inspect_header(data[:10], len(data))
