import Foundation

/// How to pick the short-axis cine series out of a study. Codable so the service
/// configuration can hold it; keys left out of a configuration take the defaults below.
///
/// A series is eligible when it forms a valid 4D grid (see `DicomSeriesLayout`), its
/// description matches none of `avoidDescriptions`, and it has at least `minSlices` slice
/// positions and `minPhases` frames per position. Among eligible series the highest score
/// wins: +2 for a description matching `preferDescriptions`, +1 for an oblique stack (when
/// `preferOblique`), then more slices, more phases, lower series number.
public struct SeriesRules: Codable, Equatable, Sendable {
    /// Regular expressions (case-insensitive) for descriptions of short-axis cines.
    public var preferDescriptions: [String]
    /// Regular expressions (case-insensitive) for series that are never the short-axis cine:
    /// localisers, long-axis views, late enhancement, mapping, perfusion, flow, tagging.
    public var avoidDescriptions: [String]
    public var minPhases: Int
    public var minSlices: Int
    /// Prefer stacks whose normal is more than `pureOrientationDegrees` off every patient axis.
    public var preferOblique: Bool
    public var pureOrientationDegrees: Double

    public static let defaultPrefer = [
        "(^|[^a-z])(sa|sax)([^a-z]|$)", "short[ _-]?axis", "cine", "ssfp|fiesta|true ?fisp|trufi|b-?tfe|bssfp",
    ]
    public static let defaultAvoid = [
        "loc(ali[sz]er)?([^a-z]|$)", "scout", "survey", "pilot", "[234] ?ch", "(^|[^a-z])lax([^a-z]|$)", "long[ _-]?axis",
        "lvot", "rvot", "lge", "psir", "late[ _-]?(gad|enh)", "t1[ _-]?map", "molli", "shmolli", "t2[ _-]?map",
        "perf", "flow", "phase[ _-]?contrast", "tagg?ing",
    ]

    public init(
        preferDescriptions: [String] = SeriesRules.defaultPrefer, avoidDescriptions: [String] = SeriesRules.defaultAvoid,
        minPhases: Int = 8, minSlices: Int = 4, preferOblique: Bool = true, pureOrientationDegrees: Double = 10
    ) {
        self.preferDescriptions = preferDescriptions
        self.avoidDescriptions = avoidDescriptions
        self.minPhases = minPhases
        self.minSlices = minSlices
        self.preferOblique = preferOblique
        self.pureOrientationDegrees = pureOrientationDegrees
    }

    public static let `default` = SeriesRules()

    enum CodingKeys: String, CodingKey {
        case preferDescriptions, avoidDescriptions, minPhases, minSlices, preferOblique, pureOrientationDegrees
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = SeriesRules()
        self.init(
            preferDescriptions: try c.decodeIfPresent([String].self, forKey: .preferDescriptions) ?? d.preferDescriptions,
            avoidDescriptions: try c.decodeIfPresent([String].self, forKey: .avoidDescriptions) ?? d.avoidDescriptions,
            minPhases: try c.decodeIfPresent(Int.self, forKey: .minPhases) ?? d.minPhases,
            minSlices: try c.decodeIfPresent(Int.self, forKey: .minSlices) ?? d.minSlices,
            preferOblique: try c.decodeIfPresent(Bool.self, forKey: .preferOblique) ?? d.preferOblique,
            pureOrientationDegrees: try c.decodeIfPresent(Double.self, forKey: .pureOrientationDegrees) ?? d.pureOrientationDegrees)
    }

    /// Throws if a pattern is not a valid regular expression.
    public func validate() throws {
        for p in preferDescriptions + avoidDescriptions { _ = try Self.regex(p) }
    }

    static func regex(_ pattern: String) throws -> NSRegularExpression {
        do { return try NSRegularExpression(pattern: pattern, options: [.caseInsensitive]) } catch {
            throw DicomError.invalidArgument("series rule pattern '\(pattern)' is not a valid regular expression")
        }
    }

    static func matches(_ text: String, _ patterns: [String]) -> String? {
        patterns.first { p in
            guard let re = try? regex(p) else { return false }
            return re.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
        }
    }
}

/// One series judged against the rules.
public struct SeriesAssessment: Sendable {
    public var series: DicomSeries
    public var layout: DicomSeriesLayout?
    /// Why the series does not form a grid, if it does not.
    public var layoutError: DicomError?
    public var eligible: Bool
    public var score: Int
    /// Why it is not eligible, or what counted for it.
    public var notes: [String]

    /// One line for listings and errors: label, size, orientation, verdict (no identifiers).
    public var summary: String {
        var parts = [series.label, "\(series.images.count) image(s)"]
        if let l = layout {
            parts.append("\(l.columns)x\(l.rows), \(l.sliceCount) slice(s) x \(l.frameCount) frame(s), \(l.pureOrientation ?? "oblique")")
        }
        return parts.joined(separator: ", ") + ": " + (eligible ? "eligible" : "not eligible") + (notes.isEmpty ? "" : " (" + notes.joined(separator: "; ") + ")")
    }
}

extension SeriesRules {
    /// Judges one series.
    public func assess(_ series: DicomSeries) -> SeriesAssessment {
        var a = SeriesAssessment(series: series, layout: nil, layoutError: nil, eligible: false, score: 0, notes: [])
        if let p = Self.matches(series.description, avoidDescriptions) { a.notes.append("description matches avoided pattern '\(p)'") }
        if Self.matches(series.description, preferDescriptions) != nil { a.score += 2 }
        do {
            let l = try DicomSeriesLayout.analyse(series)
            a.layout = l
            if l.sliceCount < minSlices { a.notes.append("\(l.sliceCount) slice position(s), \(minSlices) needed") }
            if l.frameCount < minPhases { a.notes.append("\(l.frameCount) phase(s), \(minPhases) needed") }
            if DicomGeometry.pureOrientation(normal: l.normal, degrees: pureOrientationDegrees) == nil, preferOblique { a.score += 1 }
        } catch let e as DicomError {
            a.layoutError = e
            a.notes.append(e.description)
        } catch {
            a.notes.append("\(error)")
        }
        a.eligible = a.notes.isEmpty
        return a
    }

    /// The short-axis cine of a scanned folder. When no series is eligible: a series that
    /// looks like the cine but does not form a valid grid gets its own specific error;
    /// otherwise the error lists every series and why it was passed over.
    public func chooseCine(from scan: DicomFolderScan) throws -> SeriesAssessment {
        try validate()
        guard !scan.series.isEmpty else {
            if scan.nonImages.isEmpty { throw DicomError.noImages(folder: scan.folder, skipped: scan.notDicom.count) }
            throw DicomError.noShortAxisCine(
                folder: scan.folder,
                reasons: ["no image series; \(scan.nonImages.count) non-image object(s): "
                    + Set(scan.nonImages.map(\.reason)).sorted().joined(separator: ", ")])
        }
        let all = scan.series.map(assess)
        let eligible = all.filter(\.eligible)
        if let best = eligible.max(by: { rank($0) < rank($1) }) { return best }
        let broken = all.filter { $0.layoutError != nil && Self.matches($0.series.description, avoidDescriptions) == nil }
        if let b = broken.max(by: { $0.score < $1.score }), let e = b.layoutError, b.score > 0 || broken.count == 1 {
            throw e
        }
        throw DicomError.noShortAxisCine(folder: scan.folder, reasons: all.map(\.summary))
    }

    private func rank(_ a: SeriesAssessment) -> (Int, Int, Int, Int) {
        (a.score, a.layout?.sliceCount ?? 0, a.layout?.frameCount ?? 0, -(a.series.seriesNumber ?? Int.max / 2))
    }
}
