import CardiacImaging

/// Where a displayed slice sits along the ventricle.
public enum SlicePosition: String, CaseIterable, Sendable, Codable {
    case basal, mid, apical
}

/// The basal, mid-ventricular and apical slices of one frame, and why they were chosen.
public struct SliceChoice: Equatable, Sendable {
    /// Slice index (k) per position.
    public var basal: Int, mid: Int, apical: Int
    /// What the extent was measured on: "LV", "Myo", "RV", "any structure" or "no labels".
    public var basis: String

    public subscript(_ p: SlicePosition) -> Int {
        switch p {
        case .basal: basal
        case .mid: mid
        case .apical: apical
        }
    }
}

enum SliceSelection {
    /// Voxel counts of one label on each slice k.
    static func counts(_ map: LabelMap, where keep: (UInt8) -> Bool) -> [Int] {
        let plane = map.shape.nx * map.shape.ny
        return (0..<map.shape.nz).map { k in
            var n = 0
            for v in map.labels[(k * plane)..<((k + 1) * plane)] where keep(v) { n += 1 }
            return n
        }
    }

    /// Whether slice 0 is the basal end, judged on the ED map: the base holds the larger LV
    /// (else myocardial) cross-section at the ends of its extent, and the RV reaches it.
    /// Ties and empty maps keep the stack order (slice 0 basal, ACDC's habit).
    static func baseAtSliceZero(ed: LabelMap) -> Bool {
        for label in [CardiacLabel.lv, .myo, .rv] {
            let c = counts(ed) { $0 == label.rawValue }
            guard let first = c.firstIndex(where: { $0 > 0 }), let last = c.lastIndex(where: { $0 > 0 }), first != last
            else { continue }
            if c[first] != c[last] { return c[first] > c[last] }
        }
        return true
    }

    /// Basal, mid and apical slices of `map`: the ends and middle of the LV's extent, falling
    /// back to the myocardium, the RV, any structure, and at last the whole stack.
    static func choose(_ map: LabelMap, baseAtZero: Bool) -> SliceChoice {
        let candidates: [(String, (UInt8) -> Bool)] = [
            ("LV", { $0 == CardiacLabel.lv.rawValue }), ("Myo", { $0 == CardiacLabel.myo.rawValue }),
            ("RV", { $0 == CardiacLabel.rv.rawValue }), ("any structure", { $0 != 0 }),
        ]
        var lo = 0, hi = map.shape.nz - 1, basis = "no labels"
        for (name, keep) in candidates {
            let c = counts(map, where: keep)
            if let first = c.firstIndex(where: { $0 > 0 }), let last = c.lastIndex(where: { $0 > 0 }) {
                (lo, hi, basis) = (first, last, name)
                break
            }
        }
        let mid = (lo + hi) / 2
        return baseAtZero
            ? SliceChoice(basal: lo, mid: mid, apical: hi, basis: basis)
            : SliceChoice(basal: hi, mid: (lo + hi + 1) / 2, apical: lo, basis: basis)
    }

    /// Display window of an image: the 1st and 99.5th percentiles of its finite values
    /// (robust to a few bright voxels); a flat image gets a unit-wide window.
    static func window(_ values: [Float]) -> (lo: Float, hi: Float) {
        var finite = values.filter(\.isFinite)
        guard !finite.isEmpty else { return (0, 1) }
        // Subsample large frames: the percentiles of every 4th voxel are as good for display.
        if finite.count > 400_000 { finite = stride(from: 0, to: finite.count, by: 4).map { finite[$0] } }
        finite.sort()
        func pct(_ q: Double) -> Float { finite[min(finite.count - 1, Int((q / 100 * Double(finite.count - 1)).rounded()))] }
        let lo = pct(1), hi = pct(99.5)
        return hi > lo ? (lo, hi) : (lo, lo + 1)
    }

    /// The in-plane crop (voxel index bounds, inclusive) shown in every panel: the bounding
    /// box of all structures in both maps, padded by `marginMM` and widened to a square in
    /// millimetres where the field of view allows; the whole plane when there are no labels.
    static func crop(ed: LabelMap, es: LabelMap, marginMM: Double) -> (i0: Int, i1: Int, j0: Int, j1: Int) {
        let (nx, ny) = (ed.shape.nx, ed.shape.ny)
        var i0 = nx, i1 = -1, j0 = ny, j1 = -1
        for map in [ed, es] {
            for (idx, v) in map.labels.enumerated() where v != 0 {
                let i = idx % nx, j = (idx / nx) % ny
                i0 = min(i0, i)
                i1 = max(i1, i)
                j0 = min(j0, j)
                j1 = max(j1, j)
            }
        }
        guard i1 >= 0 else { return (0, nx - 1, 0, ny - 1) }
        let sp = ed.geometry.spacing
        // Centre and half-size in mm, square, padded.
        let ci = Double(i0 + i1) / 2 * sp.x, cj = Double(j0 + j1) / 2 * sp.y
        let half = max(Double(i1 - i0 + 1) * sp.x, Double(j1 - j0 + 1) * sp.y) / 2 + marginMM
        func bounds(_ c: Double, _ s: Double, _ n: Int) -> (Int, Int) {
            var a = Int(((c - half) / s).rounded(.down)), b = Int(((c + half) / s).rounded(.up))
            // Shift inside the plane before clipping, so the crop stays as square as it can.
            if a < 0 { (a, b) = (0, b - a) }
            if b > n - 1 { (a, b) = (max(0, a - (b - (n - 1))), n - 1) }
            return (a, b)
        }
        let (a0, a1) = bounds(ci, sp.x, nx), (b0, b1) = bounds(cj, sp.y, ny)
        return (a0, a1, b0, b1)
    }
}
