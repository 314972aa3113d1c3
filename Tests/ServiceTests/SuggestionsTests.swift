import CardiacImaging
import Foundation
import Testing

@testable import Service

@Suite struct SuggestionsTests {
    func c(_ id: Int64, _ u: Double, _ f: [Double]) -> Suggestions.Candidate {
        Suggestions.Candidate(id: id, name: "s\(id)", uncertainty: u, features: f)
    }

    /// The most uncertain first; a near-copy of it waits behind a less uncertain study that is
    /// unlike it; a study already picked is never picked again.
    @Test func mostUncertainFirstThenDiverse() {
        let cands = [
            c(1, 0.30, [150, 60, 140, 70, 120, 10]),
            c(2, 0.29, [151, 60, 141, 70, 121, 10]),  // a near-copy of 1
            c(3, 0.20, [90, 50, 80, 40, 70, 8]),
            c(4, 0.05, [200, 90, 190, 100, 160, 12]),
            c(5, 0.18, [120, 40, 110, 45, 100, 9]),
        ]
        let picks = Suggestions.pick(cands, count: 3)
        #expect(picks.map(\.candidate.id) == [1, 3, 5])
        #expect(picks[0].distance == nil && picks[1].distance! > 0)
        #expect(Suggestions.pick(cands, count: 10).map(\.candidate.id).sorted() == [1, 2, 3, 4, 5])
        #expect(Suggestions.pick(cands, count: 0).isEmpty && Suggestions.pick([], count: 5).isEmpty)
        // Without the near-copy rule the second would be study 2: uncertainty alone ranks it second.
        #expect(cands.sorted { $0.uncertainty > $1.uncertainty }.map(\.id).prefix(2) == [1, 2])
    }

    /// Candidates come from the done studies' stats.json, without those already labelled.
    @Test func candidatesAreDoneStudiesNotYetLabelled() throws {
        let root = try makeTempFolder()
        defer { removeTempFolder(root) }
        var config = ServiceConfig()
        config.data = root
        let journal = try Journal(path: config.journalPath)
        for (n, u) in [("a", 0.2), ("b", 0.1), ("c", 0.3)] {
            let rec = try journal.claim(name: n, kind: "nifti", workFolder: config.workPath)
            try journal.markProcessing(rec.id, kind: "nifti")
            try journal.markDone(rec.id, modelVersion: "v", seconds: 1)
            try FileManager.default.createDirectory(atPath: config.outboxPath + "/" + n, withIntermediateDirectories: true)
            let stats = """
                {"volumes": {"lvCavity": \(100 * u), "rvCavity": 80, "myocardium": 90, "lvVoxels": 1, "rvVoxels": 1, "myoVoxels": 1},
                 "sliceAreas": [], "review": {"uncertainty": \(u), "threshold": 0.12, "review": true}}
                """
            try stats.write(toFile: config.outboxPath + "/\(n)/stats.json", atomically: true, encoding: .utf8)
        }
        _ = try journal.recordLabel(name: "c", accepted: true, volumes: 2, reason: nil)
        let cands = try Suggestions.candidates(config: config)
        #expect(cands.map(\.name) == ["a", "b"])
        #expect(cands.map(\.uncertainty) == [0.2, 0.1])
        #expect(Suggestions.pick(cands, count: 1).first?.candidate.name == "a")
    }
}
