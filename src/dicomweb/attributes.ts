// The attribute dictionary of the DICOMweb layer: keyword, tag and VR of the
// attributes QIDO-RS matches on, returns by default, or that viewers commonly
// ask for (PS3.6 chapter 6), and the query level of every attribute.

/** A query level of the Study Root Query/Retrieve Information Model (PS3.4 C.6.2). */
export type QidoLevel = 'study' | 'series' | 'instance'

/** One entry of the dictionary. */
export interface AttributeInfo {
  /** `GGGGEEEE`, upper-case hex. */
  tag: string
  /** PS3.6 keyword, e.g. `PatientName`. */
  keyword: string
  /** Value Representation (the first one PS3.6 lists when it lists several). */
  vr: string
}

// Tag, keyword, VR. Grouped by the level attributeLevel() gives them.
const TABLE = `
00080005 SpecificCharacterSet CS|00080056 InstanceAvailability CS|00081190 RetrieveURL UR

00080020 StudyDate DA|00080030 StudyTime TM|00080050 AccessionNumber SH|00080051 IssuerOfAccessionNumberSequence SQ
00080061 ModalitiesInStudy CS|00080062 SOPClassesInStudy UI|00080090 ReferringPhysicianName PN
00080096 ReferringPhysicianIdentificationSequence SQ|0008009C ConsultingPhysicianName PN|00081030 StudyDescription LO
00081032 ProcedureCodeSequence SQ|00081048 PhysiciansOfRecord PN|00081060 NameOfPhysiciansReadingStudy PN
00081080 AdmittingDiagnosesDescription LO|00081110 ReferencedStudySequence SQ|00100010 PatientName PN|00100020 PatientID LO
00100021 IssuerOfPatientID LO|00100024 IssuerOfPatientIDQualifiersSequence SQ|00100030 PatientBirthDate DA
00100032 PatientBirthTime TM|00100040 PatientSex CS|00101001 OtherPatientNames PN|00101002 OtherPatientIDsSequence SQ
00101010 PatientAge AS|00101020 PatientSize DS|00101030 PatientWeight DS|00102160 EthnicGroup SH|00102180 Occupation SH
001021B0 AdditionalPatientHistory LT|00102201 PatientSpeciesDescription LO|00102203 PatientSexNeutered CS
00104000 PatientComments LT|00120062 PatientIdentityRemoved CS|00120063 DeidentificationMethod LO
00120064 DeidentificationMethodCodeSequence SQ|0020000D StudyInstanceUID UI|00200010 StudyID SH
00201206 NumberOfStudyRelatedSeries IS|00201208 NumberOfStudyRelatedInstances IS|00321032 RequestingPhysician PN
00380010 AdmissionID LO

00080021 SeriesDate DA|00080031 SeriesTime TM|00080060 Modality CS|00080064 ConversionType CS
00080068 PresentationIntentType CS|00080070 Manufacturer LO|00080080 InstitutionName LO|00080081 InstitutionAddress ST
00081010 StationName SH|0008103E SeriesDescription LO|00081040 InstitutionalDepartmentName LO
00081050 PerformingPhysicianName PN|00081070 OperatorsName PN|00081090 ManufacturerModelName LO
00081111 ReferencedPerformedProcedureStepSequence SQ|00081250 RelatedSeriesSequence SQ|00102210 AnatomicalOrientationType CS
00120071 ClinicalTrialSeriesID LO|00120072 ClinicalTrialSeriesDescription LO|00180015 BodyPartExamined CS
00181000 DeviceSerialNumber LO|00181020 SoftwareVersions LO|00181030 ProtocolName LO|00185100 PatientPosition CS
0020000E SeriesInstanceUID UI|00200011 SeriesNumber IS|00200060 Laterality CS|00201209 NumberOfSeriesRelatedInstances IS
00280108 SmallestPixelValueInSeries US|00280109 LargestPixelValueInSeries US|00400244 PerformedProcedureStepStartDate DA
00400245 PerformedProcedureStepStartTime TM|00400250 PerformedProcedureStepEndDate DA|00400251 PerformedProcedureStepEndTime TM
00400253 PerformedProcedureStepID SH|00400254 PerformedProcedureStepDescription LO|00400260 PerformedProtocolCodeSequence SQ
00400275 RequestAttributesSequence SQ|00400280 CommentsOnThePerformedProcedureStep ST

00080008 ImageType CS|00080012 InstanceCreationDate DA|00080013 InstanceCreationTime TM|00080014 InstanceCreatorUID UI
00080016 SOPClassUID UI|00080018 SOPInstanceUID UI|00080022 AcquisitionDate DA|00080023 ContentDate DA
0008002A AcquisitionDateTime DT|00080032 AcquisitionTime TM|00080033 ContentTime TM|00080201 TimezoneOffsetFromUTC SH
00081115 ReferencedSeriesSequence SQ|00081140 ReferencedImageSequence SQ|00081150 ReferencedSOPClassUID UI
00081155 ReferencedSOPInstanceUID UI|00082111 DerivationDescription ST|00082218 AnatomicRegionSequence SQ
00180010 ContrastBolusAgent LO|00180020 ScanningSequence CS|00180021 SequenceVariant CS|00180022 ScanOptions CS
00180023 MRAcquisitionType CS|00180040 CineRate IS|00180050 SliceThickness DS|00180060 KVP DS|00180080 RepetitionTime DS
00180081 EchoTime DS|00180082 InversionTime DS|00180083 NumberOfAverages DS|00180084 ImagingFrequency DS
00180086 EchoNumbers IS|00180087 MagneticFieldStrength DS|00180088 SpacingBetweenSlices DS|00180090 DataCollectionDiameter DS
00180091 EchoTrainLength IS|00181063 FrameTime DS|00181100 ReconstructionDiameter DS|00181110 DistanceSourceToDetector DS
00181111 DistanceSourceToPatient DS|00181120 GantryDetectorTilt DS|00181130 TableHeight DS|00181140 RotationDirection CS
00181150 ExposureTime IS|00181151 XRayTubeCurrent IS|00181152 Exposure IS|00181160 FilterType SH
00181164 ImagerPixelSpacing DS|00181210 ConvolutionKernel SH|00181250 ReceiveCoilName SH|00181310 AcquisitionMatrix US
00181314 FlipAngle DS|00185101 ViewPosition CS|00186011 SequenceOfUltrasoundRegions SQ|00200012 AcquisitionNumber IS
00200013 InstanceNumber IS|00200020 PatientOrientation CS|00200032 ImagePositionPatient DS|00200037 ImageOrientationPatient DS
00200052 FrameOfReferenceUID UI|00200062 ImageLaterality CS|00201040 PositionReferenceIndicator LO|00201041 SliceLocation DS
00204000 ImageComments LT|00280002 SamplesPerPixel US|00280004 PhotometricInterpretation CS|00280006 PlanarConfiguration US
00280008 NumberOfFrames IS|00280009 FrameIncrementPointer AT|00280010 Rows US|00280011 Columns US|00280030 PixelSpacing DS
00280034 PixelAspectRatio IS|00280100 BitsAllocated US|00280101 BitsStored US|00280102 HighBit US
00280103 PixelRepresentation US|00280106 SmallestImagePixelValue US|00280107 LargestImagePixelValue US
00280120 PixelPaddingValue US|00281050 WindowCenter DS|00281051 WindowWidth DS|00281052 RescaleIntercept DS
00281053 RescaleSlope DS|00281054 RescaleType LO|00282110 LossyImageCompression CS|00282112 LossyImageCompressionRatio DS
00282114 LossyImageCompressionMethod CS|20500020 PresentationLUTShape CS|7FE00010 PixelData OW`

const BY_TAG = new Map<string, AttributeInfo>()
const BY_KEYWORD = new Map<string, AttributeInfo>()
for (const entry of TABLE.split(/[|\n]/)) {
  const [tag, keyword, vr] = entry.trim().split(' ')
  if (tag === undefined || tag === '' || keyword === undefined || vr === undefined) continue
  const info: AttributeInfo = { tag, keyword, vr }
  BY_TAG.set(tag, info)
  BY_KEYWORD.set(keyword.toLowerCase(), info)
}

/** Every attribute of the dictionary, in tag order. */
export function dictionaryEntries(): AttributeInfo[] {
  return [...BY_TAG.values()].sort((a, b) => (a.tag < b.tag ? -1 : 1))
}

/** The dictionary entry of a tag `GGGGEEEE` (either case), or undefined. */
export function attributeByTag(tag: string): AttributeInfo | undefined {
  return BY_TAG.get(tag.toUpperCase())
}

/** The dictionary entry of a keyword; exact keywords and any other letter case are accepted (`PatientName`, `patientname`). */
export function attributeByKeyword(keyword: string): AttributeInfo | undefined {
  return BY_KEYWORD.get(keyword.toLowerCase())
}

// Study level besides group 0010 and 0012: General Study, Patient Study and the
// query attributes computed per study (PS3.3 C.7.2.1, C.7.2.2; PS3.4 C.3.4).
const STUDY = new Set(
  '00080020 00080030 00080050 00080051 00080061 00080062 00080090 00080096 0008009C 00081030 00081032 00081048 00081060 00081080 00081110 0020000D 00200010 00201200 00201202 00201204 00201206 00201208 00321032 00321033 00380010 00380500'.split(
    ' ',
  ),
)
// Series level: General Series, General / Enhanced / SC Equipment, DX Series,
// Clinical Trial Series, the performed procedure step and request attributes,
// and the count computed per series (PS3.3 C.7.3.1, C.7.5.1; PS3.4 C.3.4).
const SERIES = new Set(
  '00080021 00080031 00080060 00080064 00080068 00080070 00080080 00080081 00081010 0008103E 00081040 00081050 00081052 00081070 00081072 00081090 00081111 00081250 00102210 00120071 00120072 00120073 00180015 00181000 00181020 00181030 00185100 0020000E 00200011 00200060 00201209 00280108 00280109 00400244 00400245 00400250 00400251 00400253 00400254 00400260 00400275 00400280'.split(
    ' ',
  ),
)
/** Attributes present, with their own value, at every level: Specific Character Set, and the Instance Availability and Retrieve URL computed per result. */
export const EVERY_LEVEL: ReadonlySet<string> = new Set(['00080005', '00080056', '00081190'])

/**
 * The query level an attribute belongs to (the rule {@link splitLevels} and
 * the QIDO-RS query follow):
 * - `'all'`: Specific Character Set (0008,0005), Instance Availability
 *   (0008,0056), Retrieve URL (0008,1190): each level has its own;
 * - `'series'`: General Series and General Equipment modules and their kin
 *   (Modality, Series Instance UID, Series Number, Series Description, Body
 *   Part Examined, Series Date / Time, Performed Procedure Step Start Date /
 *   Time, Request Attributes Sequence, Anatomical Orientation Type (0010,2210),
 *   Clinical Trial Series (0012,0071-0073), ...);
 * - `'study'`: the Patient module and everything else in groups 0010 and 0012
 *   (patient, clinical trial subject and study, de-identification marks),
 *   General Study and Patient Study modules (Study Date / Time, Accession
 *   Number, Referring Physician, Study Description, Study Instance UID, Study
 *   ID, ...), Modalities / SOP Classes in Study and the study counts;
 * - `'instance'`: everything else, private tags included.
 */
export function attributeLevel(tag: string): QidoLevel | 'all' {
  const t = tag.toUpperCase()
  if (EVERY_LEVEL.has(t)) return 'all'
  if (SERIES.has(t)) return 'series'
  if (STUDY.has(t) || t.startsWith('0010') || t.startsWith('0012')) return 'study'
  return 'instance'
}
