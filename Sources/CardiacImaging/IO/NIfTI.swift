import CNIfTI
import Foundation

/// NIfTI-1 and NIfTI-2 (`.nii`, `.nii.gz`) through nifti2_io.
///
/// Reading keeps voxels in their stored type and the spatial header as stored, so writing a
/// volume back reproduces voxels and transforms bit for bit. Geometry follows the sform, then
/// the qform, then pixdim scaling (see `NIfTISpatialHeader.bestAffine`).
public enum NIfTI {
    /// The largest voxel payload read by default (2 GiB); a cardiac cine is tens of MB.
    public static let defaultMaxBytes: Int64 = 2 << 30

    private static func errorBuffer() -> [CChar] { [CChar](repeating: 0, count: 512) }

    /// Reads a 3D or 4D volume.
    public static func read(_ path: String, maxBytes: Int64 = defaultMaxBytes) throws -> Volume {
        guard FileManager.default.fileExists(atPath: path) else { throw ImagingError.fileNotFound(path) }
        var hdr = asn_nifti_header()
        var raw: UnsafeMutableRawPointer?
        var err = errorBuffer()
        let rc = asn_nifti_read(path, maxBytes, &hdr, &raw, &err, err.count)
        guard rc == 0, let raw else {
            throw ImagingError.unreadable(path: path, reason: String(cString: err))
        }
        defer { asn_nifti_free(raw) }
        let dims = dimensions(hdr)
        // Dimensions 5-7 (vector components and the like) are not images we segment.
        guard dims[4...].allSatisfy({ $0 == 1 }) else {
            throw ImagingError.unsupported(
                path: path, reason: "dimensions beyond time (dim[5...7] = \(Array(dims[4...]))) are not supported")
        }
        let shape = GridShape(dims[0], dims[1], dims[2], dims[3])
        guard let data = VoxelData.copy(from: raw, datatype: hdr.datatype, count: shape.count) else {
            throw ImagingError.unsupported(path: path, reason: "datatype \(hdr.datatype)")
        }
        // A NaN or infinite voxel is damaged data: no intensity window, stat or segmentation
        // of it means anything, so the file is refused with the voxel named.
        if let i = data.firstNonFinite() {
            let plane = shape.nx * shape.ny, vol = plane * shape.nz
            let (x, y, z, t) = (i % shape.nx, (i / shape.nx) % shape.ny, (i % vol) / plane, i / vol)
            let value = data.floats(range: i..<(i + 1))[0]
            throw ImagingError.unreadable(
                path: path, reason: "voxel (\(x), \(y), \(z)\(shape.nt > 1 ? ", \(t)" : "")) is \(value): images with NaN or infinite values are not accepted")
        }
        let spatial = spatialHeader(hdr)
        var timing: FrameTiming?
        if shape.nt > 1 {
            timing = FrameTiming(
                frameInterval: toMilliseconds(hdr.pixdim.4, units: hdr.time_units),
                offset: toMilliseconds(hdr.toffset, units: hdr.time_units))
        }
        return Volume(
            shape: shape, geometry: VolumeGeometry(nifti: spatial), data: data,
            // A non-finite scale means unscaled (as nibabel reads it), not every voxel NaN.
            slope: hdr.scl_slope.isFinite ? hdr.scl_slope : 0, intercept: hdr.scl_slope.isFinite && hdr.scl_inter.isFinite ? hdr.scl_inter : 0,
            timing: timing,
            niftiVersion: Int(hdr.nifti_version), descrip: descripString(hdr))
    }

    /// Reads a volume that must be 3D (a single frame). A 2D file is refused.
    public static func read3D(_ path: String) throws -> Volume {
        let v = try read(path)
        try requireSpatial3D(v, path: path)
        if v.shape.nt > 1 {
            throw ImagingError.unsupported(path: path, reason: "a 3D volume is needed but it has \(v.shape.nt) frames")
        }
        return v
    }

    /// Reads a label map: a 3D file of integer labels. Values are checked against `maxClass`.
    public static func readLabelMap(_ path: String, maxClass: UInt8 = 3) throws -> LabelMap {
        let v = try read3D(path)
        let values = v.floats()
        var labels = [UInt8](repeating: 0, count: values.count)
        for (i, x) in values.enumerated() {
            guard x >= 0, x <= 255, x == x.rounded() else {
                throw ImagingError.unreadable(path: path, reason: "label value \(x) at voxel \(i) is not a whole number in 0...255")
            }
            labels[i] = UInt8(x)
        }
        let map = LabelMap(shape: v.shape.spatial, geometry: v.geometry, labels: labels)
        do { try map.validate(maxClass: maxClass) } catch let e as ImagingError {
            throw ImagingError.unreadable(path: path, reason: e.description)
        }
        return map
    }

    /// Reads an image and its label map and checks they share one grid.
    public static func readPair(image: String, labels: String) throws -> (Volume, LabelMap) {
        let img = try read3D(image)
        let lab = try readLabelMap(labels)
        try lab.validate(against: img)
        return (img, lab)
    }

    static func requireSpatial3D(_ v: Volume, path: String) throws {
        let spatial = [v.shape.nx, v.shape.ny, v.shape.nz].filter { $0 > 1 }.count
        if v.shape.nz < 2 {
            throw ImagingError.notEnoughDimensions(path: path, found: spatial, needed: 3)
        }
    }

    /// Writes a volume atomically. Compression follows the name (`.nii.gz`); `compression`
    /// is the zlib level (0: library default).
    public static func write(_ volume: Volume, to path: String, compression: Int = 0) throws {
        guard path.hasSuffix(".nii") || path.hasSuffix(".nii.gz") else {
            throw ImagingError.writeFailed(path: path, reason: "a NIfTI file name must end in .nii or .nii.gz")
        }
        var hdr = asn_nifti_header()
        let s = volume.shape
        let ndim = s.nt > 1 ? 4 : 3
        hdr.nifti_version = Int32(volume.niftiVersion == 2 ? 2 : 1)
        hdr.datatype = volume.data.niftiDatatype
        hdr.dim = (Int64(ndim), Int64(s.nx), Int64(s.ny), Int64(s.nz), Int64(s.nt), 1, 1, 1)
        let n = volume.geometry.nifti
        var pix = [1.0, n.pixdim[0], n.pixdim[1], n.pixdim[2], 0, 1, 1, 1]
        if let t = volume.timing { pix[4] = t.frameInterval }
        hdr.pixdim = (pix[0], pix[1], pix[2], pix[3], pix[4], pix[5], pix[6], pix[7])
        hdr.scl_slope = volume.slope
        hdr.scl_inter = volume.intercept
        hdr.qform_code = n.qformCode
        hdr.sform_code = n.sformCode
        hdr.quatern_b = n.quaternB
        hdr.quatern_c = n.quaternC
        hdr.quatern_d = n.quaternD
        hdr.qoffset_x = n.qoffsetX
        hdr.qoffset_y = n.qoffsetY
        hdr.qoffset_z = n.qoffsetZ
        hdr.qfac = n.qfac
        withUnsafeMutableBytes(of: &hdr.sto_xyz) { buf in
            let p = buf.bindMemory(to: Double.self)
            for i in 0..<16 { p[i] = n.sform.m[i] }
        }
        hdr.xyz_units = n.xyzUnits
        hdr.time_units = volume.timing == nil ? 0 : 16  // NIFTI_UNITS_MSEC
        hdr.toffset = volume.timing?.offset ?? 0
        withUnsafeMutableBytes(of: &hdr.descrip) { buf in
            let bytes = Array(volume.descrip.utf8.prefix(79))
            for (i, b) in bytes.enumerated() { buf[i] = b }
        }
        try AtomicFile.write(to: path) { tmp in
            var err = errorBuffer()
            let rc = volume.data.withUnsafeRawBytes { raw in
                asn_nifti_write(tmp, &hdr, raw.baseAddress, Int32(compression), &err, err.count)
            }
            guard rc == 0 else {
                throw ImagingError.writeFailed(path: path, reason: String(cString: err))
            }
        }
    }

    /// Writes a label map as uint8 with its grid's exact qform and sform.
    public static func write(_ labels: LabelMap, to path: String) throws {
        try write(labels.volume, to: path)
    }

    // MARK: header helpers

    static func dimensions(_ h: asn_nifti_header) -> [Int] {
        let d = [h.dim.1, h.dim.2, h.dim.3, h.dim.4, h.dim.5, h.dim.6, h.dim.7]
        let ndim = Int(h.dim.0)
        return (0..<7).map { $0 < ndim ? Int(d[$0]) : 1 }
    }

    static func spatialHeader(_ h: asn_nifti_header) -> NIfTISpatialHeader {
        var sform = [Double](repeating: 0, count: 16)
        withUnsafeBytes(of: h.sto_xyz) { buf in
            let p = buf.bindMemory(to: Double.self)
            for i in 0..<16 { sform[i] = p[i] }
        }
        // nifti2_io leaves the sform matrix zero when sform_code is 0; keep the last row valid.
        sform[12] = 0; sform[13] = 0; sform[14] = 0; sform[15] = 1
        return NIfTISpatialHeader(
            qformCode: h.qform_code, sformCode: h.sform_code,
            quaternB: h.quatern_b, quaternC: h.quatern_c, quaternD: h.quatern_d,
            qoffsetX: h.qoffset_x, qoffsetY: h.qoffset_y, qoffsetZ: h.qoffset_z,
            qfac: h.qfac < 0 ? -1 : 1,
            pixdim: [h.pixdim.1, h.pixdim.2, h.pixdim.3],
            sform: Matrix4(rowMajor: sform), xyzUnits: h.xyz_units)
    }

    static func descripString(_ h: asn_nifti_header) -> String {
        withUnsafeBytes(of: h.descrip) { buf in
            let bytes = buf.prefix(while: { $0 != 0 })
            return String(decoding: bytes, as: UTF8.self)
        }
    }

    /// NIfTI time units: 8 s, 16 ms, 24 us; anything else is taken as ms.
    static func toMilliseconds(_ value: Double, units: Int32) -> Double {
        switch units {
        case 8: value * 1000
        case 24: value / 1000
        default: value
        }
    }
}
