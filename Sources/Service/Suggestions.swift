import CardiacImaging
import Foundation

/// "Annotate this one next": the done studies whose corrected labels should teach the next
/// refit most. The head's uncertainty says where it is unsure; diversity keeps five suggestions
/// from being five near-copies (studies alike in their measurements teach the same thing).
/// Greedy: the most uncertain first, then each next one by its uncertainty times how far it
/// lies from those already picked (standardised measurements, a distance at the candidates'
/// median pairwise distance halves the weight). Studies already labelled are left out.
public enum Suggestions {
    public struct Candidate: Sendable, Codable, Equatable {
        public var id: Int64
        public var name: String
        public var uncertainty: Double
        /// LV EDV, LV ESV, RV EDV, RV ESV, LV mass, slices: what makes two hearts alike here.
        public var features: [Double]

        public init(id: Int64, name: String, uncertainty: Double, features: [Double]) {
            self.id = id
            self.name = name
            self.uncertainty = uncertainty
            self.features = features
        }
    }

    public struct Pick: Sendable, Codable, Equatable {
        public var candidate: Candidate
        /// Distance to the nearest study picked before it (standardised units); nil for the first.
        public var distance: Double?
        public var score: Double
    }

    public static func pick(_ candidates: [Candidate], count: Int) -> [Pick] {
        guard count > 0, !candidates.isEmpty else { return [] }
        let z = standardised(candidates.map(\.features))
        func distance(_ a: Int, _ b: Int) -> Double {
            (zip(z[a], z[b]).map { ($0 - $1) * ($0 - $1) }.reduce(0, +) / Double(max(1, z[a].count))).squareRoot()
        }
        var pairs: [Double] = []
        if candidates.count <= 400 {
            for a in 0..<candidates.count { for b in (a + 1)..<candidates.count { pairs.append(distance(a, b)) } }
        }
        let d0 = pairs.isEmpty ? 1 : max(1e-6, pairs.sorted()[pairs.count / 2])
        var chosen: [Int] = [], picks: [Pick] = []
        var nearest = [Double](repeating: .infinity, count: candidates.count)
        while chosen.count < min(count, candidates.count) {
            var best = -1, bestScore = -Double.infinity
            for i in candidates.indices where !chosen.contains(i) {
                let u = max(0, candidates[i].uncertainty)
                let s = chosen.isEmpty ? u : u * nearest[i] / (nearest[i] + d0)
                if s > bestScore || (s == bestScore && best >= 0 && candidates[i].id < candidates[best].id) { (best, bestScore) = (i, s) }
            }
            picks.append(Pick(candidate: candidates[best], distance: chosen.isEmpty ? nil : nearest[best], score: bestScore))
            chosen.append(best)
            for i in candidates.indices { nearest[i] = min(nearest[i], distance(i, best)) }
        }
        return picks
    }

    /// Each feature to zero mean and unit spread over the candidates (a constant one to zero).
    static func standardised(_ rows: [[Double]]) -> [[Double]] {
        guard let width = rows.first?.count else { return rows }
        var out = rows
        for f in 0..<width {
            let column = rows.map { $0.indices.contains(f) && $0[f].isFinite ? $0[f] : 0 }
            let mean = column.reduce(0, +) / Double(column.count)
            let sd = (column.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(column.count)).squareRoot()
            for r in out.indices where out[r].indices.contains(f) { out[r][f] = sd > 0 ? (column[r] - mean) / sd : 0 }
        }
        return out
    }

    /// The candidates of a service: done studies with an uncertainty and measurements in their
    /// stats.json, leaving out those whose name a labelled item already carries.
    public static func candidates(config: ServiceConfig) throws -> [Candidate] {
        let journal = try openJournal(config, readOnly: true)
        let labelled = Set(try journal.labels().map(\.name))
        var out: [Candidate] = []
        for r in try journal.studies(state: .done) where !labelled.contains(r.name) && !labelled.contains(r.outputName) {
            let path = config.outboxPath + "/" + r.outputName + "/stats.json"
            guard EntryType.of(path) == .file, let data = FileManager.default.contents(atPath: path),
                  let s = try? JSONDecoder().decode(StatsForSuggestions.self, from: data), let u = s.review?.uncertainty else { continue }
            guard let c = candidate(id: r.id, name: r.outputName, uncertainty: u, report: s.report, volumes: s.volumes,
                                    slices: s.sliceAreas?.count) else { continue }
            out.append(c)
        }
        return out
    }

    /// A candidate from a study's stats: a cine's function report, else a single frame's
    /// volumes (nil when it has neither).
    public static func candidate(
        id: Int64, name: String, uncertainty: Double, report: FunctionReport?, volumes: StructureVolumes?, slices: Int?
    ) -> Candidate? {
        if let rep = report {
            return Candidate(id: id, name: name, uncertainty: uncertainty,
                             features: [rep.lv.edv, rep.lv.esv, rep.rv.edv, rep.rv.esv, rep.lvMass, Double(rep.sliceAreasED.count)])
        }
        guard let v = volumes else { return nil }
        return Candidate(id: id, name: name, uncertainty: uncertainty,
                         features: [v.lvCavity, v.lvCavity, v.rvCavity, v.rvCavity, v.myocardium, Double(slices ?? 0)])
    }

    struct StatsForSuggestions: Decodable {
        struct Review: Decodable { var uncertainty: Double }
        var report: FunctionReport?
        var volumes: StructureVolumes?
        var sliceAreas: [SliceAreas]?
        var review: Review?
    }
}
