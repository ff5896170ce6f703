"""De-identification of DICOM objects before they are stored, and the patient's keyed hash.

dicognito (a maintained DICOM anonymiser) replaces names, IDs, UIDs, dates and addresses
with pseudonyms. It is seeded with a per-clinic key derived from ``DICOM_PSEUDONYM_KEY``,
so one UID always gets one pseudonym within a clinic: two files of one study keep one
pseudonymous study UID, across uploads too. A second pass then applies what the PS3.15
Basic Application Level Confidentiality Profile (Table E.1-1) asks beyond that: the
attributes it removes (X) are removed, the ones it empties (Z) are emptied, private tags,
overlays and curves go, and the object is marked ``PatientIdentityRemoved: YES`` with the
profile's code (113100).

The original bytes are never written to storage; only the output of :func:`deidentify` is.
"""

import io
from typing import Any

from django.conf import settings
from django.utils.crypto import salted_hmac
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

# PS3.15 Table E.1-1, Basic Profile action X (remove), the attributes that matter for MR.
REMOVE = frozenset({
    "AcquisitionComments", "AcquisitionContextSequence", "AcquisitionDeviceProcessingDescription",
    "ActualHumanPerformersSequence", "AdditionalPatientHistory", "AdmissionID",
    "AdmittingDiagnosesCodeSequence", "AdmittingDiagnosesDescription", "Allergies",
    "AuthorObserverSequence", "BranchOfService", "CassetteID",
    "CommentsOnThePerformedProcedureStep", "ConfidentialityConstraintOnPatientDataDescription",
    "CountryOfResidence", "CurrentPatientLocation", "CustodialOrganizationSequence",
    "DataSetTrailingPadding", "DerivationDescription", "DetectorID", "DeviceSerialNumber",
    "DeviceUID", "DigitalSignaturesSequence", "DischargeDiagnosisDescription", "EthnicGroup",
    "FrameComments", "GantryID", "GeneratorID", "HumanPerformerName",
    "HumanPerformerOrganization", "IconImageSequence", "IdentifyingComments", "ImageComments",
    "ImagePresentationComments", "ImagingServiceRequestComments", "Impressions",
    "InstitutionAddress", "InstitutionalDepartmentName", "InsurancePlanIdentification",
    "IntendedRecipientsOfResultsIdentificationSequence", "InterpretationApproverSequence",
    "InterpretationAuthor", "InterpretationDiagnosisDescription", "InterpretationIDIssuer",
    "InterpretationRecorder", "InterpretationText", "InterpretationTranscriber",
    "IssuerOfAdmissionID", "IssuerOfPatientID", "IssuerOfServiceEpisodeID", "MedicalAlerts",
    "MedicalRecordLocator", "MilitaryRank", "ModifiedAttributesSequence",
    "ModifiedImageDescription", "ModifyingDeviceID", "NameOfPhysiciansReadingStudy",
    "NamesOfIntendedRecipientsOfResults", "Occupation", "OperatorsName",
    "OrderCallbackPhoneNumber", "OrderEnteredBy", "OrderEntererLocation",
    "OriginalAttributesSequence", "OtherPatientIDs", "OtherPatientIDsSequence",
    "OtherPatientNames", "PatientAddress", "PatientAge", "PatientBirthName", "PatientBirthTime",
    "PatientComments", "PatientInsurancePlanCodeSequence", "PatientMotherBirthName",
    "PatientReligiousPreference", "PatientSize", "PatientState", "PatientTelephoneNumbers",
    "PatientWeight", "PerformedLocation", "PerformedProcedureStepDescription",
    "PerformedProcedureStepEndDate", "PerformedProcedureStepEndTime", "PerformedProcedureStepID",
    "PerformedProcedureStepStartDate", "PerformedProcedureStepStartTime",
    "PerformedStationAETitle", "PerformedStationGeographicLocationCodeSequence",
    "PerformedStationName", "PerformedStationNameCodeSequence",
    "PerformingPhysicianIdentificationSequence", "PerformingPhysicianName", "PersonAddress",
    "PersonTelephoneNumbers", "PhysicianApprovingInterpretation", "PhysiciansOfRecord",
    "PhysiciansOfRecordIdentificationSequence", "PhysiciansReadingStudyIdentificationSequence",
    "PregnancyStatus", "ReasonForStudy", "ReferencedPatientAliasSequence",
    "ReferencedPatientPhotoSequence", "ReferencedPatientSequence",
    "ReferencedPerformedProcedureStepSequence", "ReferencedStudySequence",
    "ReferringPhysicianAddress", "ReferringPhysicianIdentificationSequence",
    "ReferringPhysicianTelephoneNumbers", "RequestAttributesSequence",
    "RequestedProcedureComments", "RequestedProcedureDescription", "RequestedProcedureID",
    "RequestedProcedureLocation", "RequestingPhysician", "RequestingService", "ResultsComments",
    "ResultsDistributionListSequence", "ResultsIDIssuer", "ScheduledPerformingPhysicianName",
    "ScheduledProcedureStepDescription", "ScheduledStationAETitle", "ScheduledStationName",
    "SeriesDescription", "ServiceEpisodeDescription", "ServiceEpisodeID", "SmokingStatus",
    "SpecialNeeds", "StudyComments", "StudyDescription", "TextComments", "TextString",
    "TopicAuthor", "TopicKeywords", "TopicSubject", "TopicTitle", "VisitComments",
    "ProtocolName", "DeviceDescription", "StationName", "InstitutionName", "InstitutionCodeSequence",
})
# Basic Profile action Z (zero length): kept as present but empty.
EMPTY = frozenset({
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "ReferringPhysicianName",
    "AccessionNumber", "StudyID",
})
# dicognito's pseudonyms are kept for these (Z permits a dummy value); only its identity.
KEEP_PSEUDONYM = frozenset({"PatientName", "PatientID", "AccessionNumber", "StudyID"})
PROFILE_CODE = ("113100", "DCM", "Basic Application Confidentiality Profile")


class PatientIdentity:
    """The keyed hash of a DICOM object's patient, scoped to one clinic (never stored in clear)."""

    SALT = "neuroai.dicom.patient-identity"

    @staticmethod
    def of(ds: Dataset, clinic_id: Any) -> str:
        """``""`` when the object names no patient at all."""
        pid = str(ds.get("PatientID") or "").strip()
        issuer = str(ds.get("IssuerOfPatientID") or "").strip()
        if pid:
            ident = f"id:{issuer}|{pid}"
        else:
            name = str(ds.get("PatientName") or "").strip().upper()
            birth = str(ds.get("PatientBirthDate") or "").strip()
            if not name:
                return ""
            ident = f"name:{name}|{birth}"
        return salted_hmac(
            PatientIdentity.SALT, f"{clinic_id}|{ident}", secret=pseudonym_key(), algorithm="sha256"
        ).hexdigest()


def pseudonym_key() -> str:
    return str(settings.DICOM_PSEUDONYM_KEY or settings.SECRET_KEY)


def clinic_seed(clinic_id: Any) -> str:
    return salted_hmac("neuroai.dicom.pseudonym-seed", str(clinic_id), secret=pseudonym_key(),
                       algorithm="sha256").hexdigest()


_TEXT_VRS = {"PN", "LO", "SH", "LT", "ST", "UT", "UC", "DA", "DT", "TM", "AS", "AE"}


def _dictionary_vr(tag: Any) -> str:
    try:
        return str(dictionary_VR(tag))
    except KeyError:  # not in the standard's dictionary
        return ""


def _strip(dataset: Dataset) -> None:
    for element in list(dataset):
        group = element.tag.group
        if (
            element.tag.is_private
            or element.keyword in REMOVE
            or 0x5000 <= group <= 0x50FF  # curves
            or (0x6000 <= group <= 0x60FF and element.tag.element in (0x3000, 0x4000))  # overlays
        ):
            del dataset[element.tag]
        elif element.keyword in EMPTY and (element.keyword not in KEEP_PSEUDONYM or element.VR == "UN"):
            # UN: a value the anonymiser could not read (e.g. a name of 64 KB or more, which
            # explicit VR cannot hold as PN) and so did not replace: emptied, never kept.
            element.value = None
        elif element.VR == "UN" and _dictionary_vr(element.tag) in _TEXT_VRS:
            del dataset[element.tag]  # text the anonymiser could not read: nothing to vouch for
        elif element.VR == "SQ":
            for item in element.value:
                _strip(item)


class Deidentifier:
    """One per upload to one clinic: every object goes through the same seeded anonymiser."""

    def __init__(self, clinic_id: Any) -> None:
        from dicognito.anonymizer import Anonymizer

        self._anonymizer = Anonymizer(seed=clinic_seed(clinic_id))

    def deidentify(self, ds: Dataset) -> bytes:
        """De-identify ``ds`` in place and return the bytes to store."""
        self._anonymizer.anonymize(ds)
        _strip(ds)
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = "PS3.15 Basic Profile (dicognito + NeuroAI)"
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = PROFILE_CODE
        ds.DeidentificationMethodCodeSequence = Sequence([code])
        ds.LongitudinalTemporalInformationModified = "MODIFIED"
        meta = ds.file_meta
        for keyword in ("SourceApplicationEntityTitle", "SendingApplicationEntityTitle",
                        "ReceivingApplicationEntityTitle", "PrivateInformationCreatorUID",
                        "PrivateInformation"):
            if keyword in meta:
                delattr(meta, keyword)
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        if "TransferSyntaxUID" not in meta:
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        return out.getvalue()
