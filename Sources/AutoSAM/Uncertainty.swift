import Foundation

/// How unsure a head is on one slice: the entropy (nats) of its class probabilities summed
/// over the slice's pixels (several inference views: of their average), and how many pixels
/// it labels heart (RV, myocardium or LV).
public struct SliceUncertainty: Codable, Sendable, Equatable {
    public var entropy: Double
    public var heartPixels: Int

    public init(entropy: Double, heartPixels: Int) {
        self.entropy = entropy
        self.heartPixels = heartPixels
    }
}

/// A frame's uncertainty: its slices', and one score, the entropy per heart pixel over the
/// whole frame. A confident head puts its entropy on a thin band along the boundaries, so the
/// score is small; a head that hesitates over whole regions (or finds little heart) scores
/// high. A frame with no heart at all scores `noHeartScore`.
public struct VolumeUncertainty: Codable, Sendable, Equatable {
    public var slices: [SliceUncertainty]

    public init(slices: [SliceUncertainty]) { self.slices = slices }

    /// Score of a frame in which nothing was labelled heart: above any score a frame with a
    /// heart reaches in practice, so such a frame is always put up for review.
    public static let noHeartScore = 10.0

    public var score: Double {
        let heart = slices.reduce(0) { $0 + $1.heartPixels }
        guard heart > 0 else { return Self.noHeartScore }
        return slices.reduce(0) { $0 + $1.entropy } / Double(heart)
    }
}

/// Spearman's rank correlation of two equally long series (ties get their mean rank); nil
/// for fewer than 3 pairs or a constant series.
public func spearman(_ a: [Double], _ b: [Double]) -> Double? {
    precondition(a.count == b.count)
    guard a.count >= 3 else { return nil }
    func ranks(_ v: [Double]) -> [Double] {
        let order = v.indices.sorted { v[$0] < v[$1] }
        var r = [Double](repeating: 0, count: v.count)
        var i = 0
        while i < order.count {
            var j = i
            while j + 1 < order.count && v[order[j + 1]] == v[order[i]] { j += 1 }
            let mean = Double(i + j) / 2 + 1
            for t in i...j { r[order[t]] = mean }
            i = j + 1
        }
        return r
    }
    let ra = ranks(a), rb = ranks(b)
    let n = Double(a.count)
    let ma = ra.reduce(0, +) / n, mb = rb.reduce(0, +) / n
    var num = 0.0, da = 0.0, db = 0.0
    for i in a.indices {
        num += (ra[i] - ma) * (rb[i] - mb)
        da += (ra[i] - ma) * (ra[i] - ma)
        db += (rb[i] - mb) * (rb[i] - mb)
    }
    guard da > 0, db > 0 else { return nil }
    return num / (da * db).squareRoot()
}
