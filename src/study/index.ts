export * from './errors.js'
export * from './dataset.js'
export * from './deid-table.js'
export {
  IMAGE_STORAGE_SOP_CLASSES,
  MAX_INFLATED_BYTES,
  TRANSFER_SYNTAX,
  assertInstanceUids,
  checkPart10,
  isNativeTransferSyntax,
  locateTrailingPixelData,
  nativePixelLayout,
  parseDicom,
  uidText,
  type NativePixelLayout,
} from './dicom.js'
export * from './dicom-file.js'
export * from './dicom-write.js'
export * from './uid.js'
export * from './pixel.js'
export * from './deid.js'
export * from './scan.js'
export * from './pack.js'
export * from './package.js'
export * from './synthetic.js'
export * from './export.js'
export * from './lease-key.js'
