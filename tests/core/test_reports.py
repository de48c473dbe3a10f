"""Referral slips, batch summary, queue CSV and FHIR bundles, read back and checked.

PDFs are read back with pypdf (text, page boxes, embedded images and fonts) and
rendered with pdfium to check the QR code decodes; FHIR bundles are validated
with fhir.resources (its R4B models: fhir.resources 8 defaults to R5 and has no
plain R4 package; R4B keeps R4's structure for every resource used here)."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from eyescreen_desktop.core import reports
from eyescreen_desktop.core.records import Eye, ModelInfo, Patient, Queue, Status
from tests.core.report_fixtures import (
    HEALTHY,
    HOSTILE,
    MODEL,
    NAMES,
    encounter,
    embedded_fonts,
    graded,
    image_count,
    mixed_batch,
    not_graded,
    page_texts,
    pdf_text,
    photo,
    urgent_with_ungradable_eye,
)

# --------------------------------------------------------------------------- the slip


def test_slip_says_who_what_by_when_and_which_model(tmp_path):
    summary = urgent_with_ungradable_eye()
    settings = reports.SlipSettings(clinic_name="Riverside Eye Screening", clinic_address="12 Harbour Road")
    path = reports.write_referral_slip(summary, tmp_path / "slip.pdf", settings)

    text = pdf_text(path)
    for expected in ("Riverside Eye Screening", "12 Harbour Road", "Ελένη Παπαδοπούλου", "MRN-004211",
                     "3 Jul 1958", "12 Mar 2025, 09:30", "enc-0001-7f3a",
                     "URGENT REFERRAL", "See an ophthalmologist within 2 weeks", "SEE BY", "26 Mar 2025",
                     "RIGHT EYE (OD)", "LEFT EYE (OS)",
                     "Signs of sight-threatening retinopathy (82%: above this clinic's urgent referral threshold "
                     "of 31%)", "Signs of maculopathy (71%: above", "Protocol code: ICDR 4 + M", "Left eye could not be graded: out of focus",
                     "clean the lens and retake", "eyescreen-dr 1.2.0", MODEL.sha256, MODEL.sha256[:12],
                     "icdr-ada", "validation-2025-01", "Screening aid, not a diagnosis"):
        assert expected in text, expected
    assert text.index("RIGHT EYE (OD)") < text.index("LEFT EYE (OS)")  # right eye on the left
    assert len(page_texts(path)) == 1


def test_due_date_and_action_follow_the_queue(tmp_path):
    eyes = (graded("P004_R.jpg", Eye.RIGHT, (0.10, 0.15, 0.60, 0.10, 0.05)),
            graded("P004_L.jpg", Eye.LEFT, HEALTHY))
    summary = encounter(Patient("P-7", "Routine Patient"), eyes)
    assert summary.queue is Queue.ROUTINE
    text = pdf_text(reports.write_referral_slip(summary, tmp_path / "r.pdf"))
    assert "ROUTINE REFERRAL" in text and "within 3 months" in text and "11 Jun 2025" in text
    assert "URGENT" not in text


@pytest.mark.parametrize("name", NAMES)
def test_names_in_latin_greek_and_cyrillic_print(tmp_path, name):
    path = reports.write_referral_slip(urgent_with_ungradable_eye(name=name), tmp_path / "slip.pdf")
    assert name in pdf_text(path)
    assert {"DejaVuSans", "DejaVuSans-Bold"} <= embedded_fonts(path)


def test_markup_in_user_text_prints_literally(tmp_path):
    hostile = " ".join(HOSTILE)
    summary = dataclasses.replace(
        urgent_with_ungradable_eye(name=hostile, patient_id="ID</para><b>7"),
        override_reason="<b>seen</b> & agreed\nby Dr. Ж", encounter_id="enc-<i>&amp;")
    settings = reports.SlipSettings(clinic_name="Clinic <font size=99>&amp;", clinic_address="Road </para>\nTown")
    text = pdf_text(reports.write_referral_slip(summary, tmp_path / "slip.pdf", settings))
    for literal in (*HOSTILE, "ID</para><b>7", "<b>seen</b> & agreed", "by Dr. Ж", "enc-<i>&amp;",
                    "Clinic <font size=99>&amp;", "Road </para>"):
        assert literal in text, literal


def test_control_characters_and_very_long_names_do_not_break_the_slip(tmp_path):
    name = "Ann\x00e\x1b Lee " + "W" * 300
    summary = urgent_with_ungradable_eye(name=name, patient_id="X" * 200)
    text = pdf_text(reports.write_referral_slip(summary, tmp_path / "slip.pdf"))
    assert "Anne Lee" in text and "URGENT REFERRAL" in text
    assert "\x00" not in text


@pytest.mark.parametrize(("size", "box"), [("A4", (595.28, 841.89)), ("Letter", (612.0, 792.0)),
                                           ("letter", (612.0, 792.0))])
def test_a4_and_us_letter(tmp_path, size, box):
    import pypdf

    path = reports.write_referral_slip(urgent_with_ungradable_eye(), tmp_path / "slip.pdf",
                                       reports.SlipSettings(page_size=size))
    pages = pypdf.PdfReader(str(path)).pages
    assert len(pages) == 1  # the whole slip fits on one page of either size
    assert (float(pages[0].mediabox.width), float(pages[0].mediabox.height)) == pytest.approx(box, abs=0.01)


def test_unknown_page_size_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="A4, Letter"):
        reports.SlipSettings(page_size="A5")


def test_photographs_heat_map_and_logo_are_embedded(tmp_path):
    with_heat = reports.write_referral_slip(urgent_with_ungradable_eye(), tmp_path / "a.pdf")
    no_heat = reports.write_referral_slip(urgent_with_ungradable_eye(heatmap=False), tmp_path / "b.pdf")
    no_logo = reports.write_referral_slip(urgent_with_ungradable_eye(), tmp_path / "c.pdf",
                                          reports.SlipSettings(show_logo=False))
    assert image_count(with_heat) == 4   # logo, right photo, right heat map, left photo
    assert image_count(no_heat) == 3
    assert image_count(no_logo) == 3
    assert with_heat.stat().st_size < 400_000  # thumbnails, not the camera originals


def test_missing_photograph_and_unreadable_logo_still_give_a_slip(tmp_path):
    summary = urgent_with_ungradable_eye()
    gone = dataclasses.replace(summary.eyes[1], path=str(tmp_path / "deleted.jpg"))
    broken_logo = tmp_path / "logo.png"
    broken_logo.write_bytes(b"not a png")
    path = reports.write_referral_slip(dataclasses.replace(summary, eyes=(summary.eyes[0], gone)),
                                       tmp_path / "slip.pdf", reports.SlipSettings(logo_path=broken_logo))
    text = pdf_text(path)
    assert "photograph file is not available (deleted.jpg)" in text
    assert image_count(path) == 2  # right photo and heat map only


def test_eye_without_photo_and_eye_of_unknown_side(tmp_path):
    right = graded("P001_R.jpg", Eye.RIGHT, HEALTHY)
    unknown = graded("P003_R.jpg", Eye.UNKNOWN, HEALTHY)
    summary = encounter(Patient("P-9", "One Eye"), (right, unknown))
    text = pdf_text(reports.write_referral_slip(summary, tmp_path / "slip.pdf"))
    assert "LEFT EYE (OS) No photograph of this eye" in text
    assert "EYE, SIDE UNKNOWN" in text and "ANNUAL SCREENING" in text and "RESCREEN BY" in text


def test_qr_code_reads_back_as_the_encounter_id(tmp_path):
    import pypdfium2 as pdfium

    path = reports.write_referral_slip(urgent_with_ungradable_eye(), tmp_path / "slip.pdf")
    page = pdfium.PdfDocument(str(path))[0]
    rgb = page.render(scale=200 / 72).to_numpy()[:, :, :3]
    top_right = np.ascontiguousarray(rgb[: rgb.shape[0] // 5, rgb.shape[1] // 2:])
    value, points, _ = cv2.QRCodeDetector().detectAndDecode(top_right)
    assert value == "enc-0001-7f3a"


def test_heat_map_is_drawn_over_what_the_model_saw():
    photo_rgb = reports.photo_thumbnail(photo("P031_R.jpg"))
    heat = np.zeros((32, 32), np.float32)
    heat[8:12, 20:24] = 1.0                     # hot near the top right
    overlay = reports.heatmap_overlay(photo_rgb, heat, 128)
    assert overlay.shape == (128, 128, 3) and overlay.dtype == np.uint8
    assert overlay[:3, :3].max() == 0            # outside the field of view stays black
    plain = reports.heatmap_overlay(photo_rgb, np.zeros_like(heat), 128).astype(int)
    change = np.abs(overlay.astype(int) - plain).mean(axis=2)
    assert change[36:44, 84:92].mean() > 20      # the hot spot is coloured where the map says
    assert change[90:110, 40:60].mean() < 2      # elsewhere the picture is unchanged
    assert reports.heatmap_overlay(photo_rgb, np.zeros((2, 2, 2))) is None  # bad shape: no heat map


def test_slip_written_atomically_and_bytes_match(tmp_path):
    summary = urgent_with_ungradable_eye()
    data = reports.slip_pdf_bytes(summary)
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    path = reports.write_referral_slip(summary, tmp_path / "deep" / "er" / "slip.pdf")
    assert path.is_file() and not list(path.parent.glob(".*.tmp"))


def test_resolve_images_falls_back_to_the_managed_copy(tmp_path):
    summary = urgent_with_ungradable_eye()
    moved = dataclasses.replace(summary.eyes[0], path=str(tmp_path / "camera-card-wiped.jpg"))
    resolved = reports.resolve_images(dataclasses.replace(summary, eyes=(moved, summary.eyes[1])),
                                      lambda sha: photo("P031_R.jpg") if sha == moved.sha256 else None)
    assert resolved.eyes[0].path == str(photo("P031_R.jpg"))
    assert resolved.eyes[1].path == summary.eyes[1].path


# --------------------------------------------------------------------------- batch summary


def test_summary_lists_urgent_then_routine_then_review_then_rejected(tmp_path):
    encounters, rejected = mixed_batch()
    path = reports.write_batch_summary(encounters, rejected, tmp_path / "summary.pdf")
    text = pdf_text(path)
    order = ["Urgent referral 2", "Routine referral 1", "Review (retake or examine in person) 1",
             "Annual screening 1", "Patients in total 5", "Files rejected 2",
             "Urgent referral (2)", "23 Mar 2025", "URG-1", "26 Mar 2025", "URG-2",
             "Routine referral (1)", "11 Jun 2025", "ROU-1",
             "Review (retake or examine in person) (1)", "REV-1", "Right eye could not be graded: too dark",
             "Files rejected (2)", "IMG_0042.JPG", "This is not a fundus photograph", "IMG_0043.JPG",
             "truncated", "Annual screening (1)", "12 Mar 2026", "ANN-1"]
    positions = [text.find(s) for s in order]
    assert -1 not in positions, [s for s, p in zip(order, positions) if p == -1]
    assert positions == sorted(positions), text
    assert NAMES[0] in text and NAMES[3] in text and "eyescreen-dr 1.2.0" in text


def test_long_summary_spans_pages_with_numbered_pages_and_repeated_headers(tmp_path):
    eyes = (graded("P001_R.jpg", Eye.RIGHT, HEALTHY), graded("P001_L.jpg", Eye.LEFT, HEALTHY))
    many = [encounter(Patient(f"A-{i:03d}", f"Patient {i}"), eyes, i) for i in range(80)]
    path = reports.write_batch_summary(many, [], tmp_path / "summary.pdf",
                                       reports.SlipSettings(page_size="Letter"))
    pages = page_texts(path)
    assert len(pages) >= 3
    assert all(f"Page {i + 1} of {len(pages)}" in p for i, p in enumerate(pages))
    assert all("Due by" in p for p in pages[1:])  # the table header repeats
    assert "A-079" in pages[-1]


def test_empty_batch_summary(tmp_path):
    text = pdf_text(reports.write_batch_summary([], [], tmp_path / "summary.pdf"))
    assert "Patients in total 0" in text and "None." in text


def test_hostile_names_in_the_summary(tmp_path):
    encounters, rejected = mixed_batch()
    encounters[0] = dataclasses.replace(encounters[0], patient=Patient("<b>1</b>", " ".join(HOSTILE)))
    rejected[0] = dataclasses.replace(rejected[0], path="/camera/</para><b>.jpg")
    text = pdf_text(reports.write_batch_summary(encounters, rejected, tmp_path / "summary.pdf"))
    for literal in (*HOSTILE, "<b>1</b>", "</para><b>.jpg"):
        assert literal in text, literal


# --------------------------------------------------------------------------- CSV


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        return list(csv.DictReader(f))


def test_queues_csv_most_urgent_first_with_eyes(tmp_path):
    encounters, _ = mixed_batch()
    rows = _read_csv(reports.queues_csv(encounters, tmp_path / "queues.csv"))
    assert [r["patient_id"] for r in rows] == ["URG-1", "URG-2", "ROU-1", "REV-1", "ANN-1"]
    assert list(rows[0]) == list(reports.CSV_COLUMNS)
    urg = rows[0]
    assert (urg["queue"], urg["due_date"], urg["name"]) == ("urgent", "2025-03-23", "Ελένη Παπαδοπούλου")
    assert urg["right_status"] == "ok" and urg["right_grade"] == "4" and urg["right_p_urgent"] == "0.8200"
    assert urg["left_status"] == "ungradable" and urg["left_grade"] == "" and "out of focus" in urg["left_finding"]
    assert rows[2]["name"] == NAMES[0] and rows[2]["model_version"] == "1.2.0"


def test_queues_csv_defuses_spreadsheet_formulas(tmp_path):
    encounters, _ = mixed_batch()
    encounters[0] = dataclasses.replace(encounters[0], patient=Patient("=1+1", '=HYPERLINK("http://x","y")'),
                                        override_reason="@SUM(A1)")
    rows = _read_csv(reports.queues_csv(encounters, tmp_path / "queues.csv"))
    row = next(r for r in rows if r["queue"] == "annual")
    assert row["patient_id"] == "'=1+1" and row["name"].startswith("'=HYPERLINK")
    assert row["override_reason"] == "'@SUM(A1)"
    assert (tmp_path / "queues.csv").read_bytes().startswith(b"\xef\xbb\xbf")  # BOM: Excel reads UTF-8


# --------------------------------------------------------------------------- FHIR


def _validate(bundle: dict) -> None:
    from fhir.resources.R4B.bundle import Bundle

    Bundle.model_validate(bundle)


def _resources(bundle: dict, kind: str) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def _code(resource: dict) -> str:
    return resource["code"]["coding"][0]["code"]


def test_fhir_bundle_is_valid_and_complete():
    summary = urgent_with_ungradable_eye()
    bundle = reports.fhir_bundle(summary, reports.SlipSettings(clinic_name="Riverside", clinic_address="Road 1"))
    _validate(bundle)
    assert bundle["type"] == "collection"
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert {"Patient", "Encounter", "Device", "Organization", "DiagnosticReport", "ServiceRequest"} <= set(kinds)

    patient = _resources(bundle, "Patient")[0]
    assert patient["name"][0]["text"] == "Ελένη Παπαδοπούλου" and patient["birthDate"] == "1958-07-03"
    assert patient["gender"] == "female" and patient["identifier"][0]["value"] == "MRN-004211"
    encounter_res = _resources(bundle, "Encounter")[0]
    assert isinstance(encounter_res["class"], dict)  # R4 Coding (R5 made it a list)

    obs = _resources(bundle, "Observation")
    right = [o for o in obs if o["bodySite"]["coding"][0]["code"] == "18944008"]
    left = [o for o in obs if o["bodySite"]["coding"][0]["code"] == "8966001"]
    grade = next(o for o in right if _code(o) == "dr-grade")
    assert grade["valueCodeableConcept"]["coding"][0] == {
        "system": reports.ICDR_SYSTEM, "code": "4", "display": "proliferative diabetic retinopathy"}
    assert next(o for o in right if _code(o) == "dr-referable")["valueBoolean"] is True
    assert {_code(o) for o in left} == {"image-quality"}  # an ungradable eye gets no grade
    quality = left[0]
    assert quality["valueCodeableConcept"]["coding"][0]["code"] == "ungradable"
    assert quality["component"][0]["valueCodeableConcept"]["coding"][0]["code"] == "blurred"
    assert "Left eye could not be graded: out of focus" in quality["note"][0]["text"]

    report = _resources(bundle, "DiagnosticReport")[0]
    assert len(report["result"]) == len(obs)
    assert report["conclusionCode"][0]["coding"][0]["code"] == "urgent"
    follow_up = _resources(bundle, "ServiceRequest")[0]
    assert follow_up["priority"] == "urgent" and follow_up["occurrencePeriod"]["end"] == "2025-03-26"
    assert follow_up["code"]["text"] == "See an ophthalmologist within 2 weeks"
    device = _resources(bundle, "Device")[0]
    assert device["version"][0]["value"] == "1.2.0" and device["identifier"][0]["value"] == MODEL.sha256


def test_fhir_references_resolve_and_ids_are_stable():
    summary = urgent_with_ungradable_eye()
    first, again = reports.fhir_bundle(summary), reports.fhir_bundle(summary)
    urls = {e["fullUrl"] for e in first["entry"]}
    refs = set()

    def walk(node):
        if isinstance(node, dict):
            if "reference" in node:
                refs.add(node["reference"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(first)
    assert refs and refs <= urls
    assert [e["fullUrl"] for e in first["entry"]] == [e["fullUrl"] for e in again["entry"]]


@pytest.mark.parametrize("variant", ["annual", "unreadable", "no_model", "hostile", "referable_nhs_like"])
def test_fhir_bundles_of_awkward_encounters_validate(tmp_path, variant):
    eyes = (graded("P001_R.jpg", Eye.RIGHT, HEALTHY), graded("P001_L.jpg", Eye.LEFT, HEALTHY))
    summary = encounter(Patient("P-1", "Ann Lee", None, ""), eyes)
    if variant == "unreadable":
        summary = encounter(Patient("P-1"), (not_graded("/x/broken.jpg", Eye.UNKNOWN, Status.ERROR, (), "",
                                                        message="broken.jpg is not an image"),))
    elif variant == "no_model":
        summary = dataclasses.replace(summary, model=None, operating_point=None)
    elif variant == "hostile":
        summary = dataclasses.replace(summary, patient=Patient("\x00<b>", "\x1b" + HOSTILE[0], None, "x"),
                                      override_reason="</para>")
    elif variant == "referable_nhs_like":
        summary = dataclasses.replace(summary, model=ModelInfo("m", "", ""))
    path = reports.write_fhir(summary, tmp_path / "bundle.json")
    bundle = json.loads(path.read_text(encoding="utf-8"))
    _validate(bundle)
    assert _resources(bundle, "ServiceRequest")[0]["occurrencePeriod"]["end"] == summary.due_date.isoformat()


# --------------------------------------------------------------------------- words


def test_para_text_escapes_markup_and_drops_control_characters():
    assert reports.para_text("<b>a</b> & b\x00\nc") == "&lt;b&gt;a&lt;/b&gt; &amp; b<br/>c"


def test_dates_and_probabilities_cannot_be_misread():
    assert reports.format_date(dt.date(2025, 3, 2)) == "2 Mar 2025"
    assert [reports.format_probability(p) for p in (0.001, 0.5, 0.9999)] == ["<1%", "50%", ">99%"]


def test_eye_pairs_put_the_right_eye_first_and_unknown_sides_after():
    r, left = graded("P001_R.jpg", Eye.RIGHT, HEALTHY), graded("P001_L.jpg", Eye.LEFT, HEALTHY)
    u = graded("P003_R.jpg", Eye.UNKNOWN, HEALTHY)
    rows = reports.eye_pairs((left, u, r))
    assert rows[0] == ((r, Eye.RIGHT), (left, Eye.LEFT))
    assert rows[1] == ((u, Eye.UNKNOWN), (None, Eye.UNKNOWN))
    assert reports.eye_pairs(()) == [((None, Eye.RIGHT), (None, Eye.LEFT))]


def test_slip_header_says_the_service_once_and_the_weights_hash_once(tmp_path):
    """Issue 24 item 11: the default header read "Diabetic eye screening / Diabetic eye
    screening - referral slip" and the provenance printed the hash short, then in full."""
    summary = urgent_with_ungradable_eye()
    text = pdf_text(reports.write_referral_slip(summary, tmp_path / "slip.pdf"))
    assert text.lower().count("diabetic eye screening") == 1, text
    assert text.count(MODEL.sha256[:12]) == 1 and MODEL.sha256 in text
    own = reports.SlipSettings(clinic_name="Riverside Eye Unit")
    text = pdf_text(reports.write_referral_slip(summary, tmp_path / "own.pdf", own))
    assert "Diabetic eye screening \u2013 referral slip" in text  # a clinic's own name: the title names the service
    encounters, rejected = mixed_batch()
    text = pdf_text(reports.write_batch_summary(encounters, rejected, tmp_path / "summary.pdf"))
    assert text.lower().count("diabetic eye screening") == 1, text
