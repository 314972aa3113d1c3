import Foundation
import Fuzzing
import Testing

/// The fuzzing harnesses stay alive in the ordinary suite: every harness has a committed seed
/// corpus that its parser accepts, every input that once crashed, hung or over-allocated
/// (Fuzz/regressions) runs through it again, and a few hundred cheap mutations of each seed run
/// too. A crash here takes the test process down, which fails the run.
@Suite(.serialized) struct FuzzCorpusTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fuzz").path

    static func inputs(_ folder: String) -> [Data] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).sorted()
        return names.compactMap { FileManager.default.contents(atPath: folder + "/" + $0) }
    }

    @Test(arguments: FuzzHarnesses.all.map(\.name))
    func seedsAreAcceptedAndRegressionsRun(_ name: String) throws {
        let harness = try #require(FuzzHarnesses.named(name))
        let seeds = Self.inputs(Self.root + "/corpus/" + name)
        #expect(!seeds.isEmpty, "no seed corpus for \(name) in Fuzz/corpus/\(name)")
        // Each seed is a valid input: the harness reaches the parser's accepting path.
        for (i, s) in seeds.enumerated() { #expect(harness.run(s), "seed \(i) of \(name) is refused") }
        for r in Self.inputs(Self.root + "/regressions/" + name) { _ = harness.run(r) }
    }

    /// Truncations and byte changes of every seed (deterministic): all must end in an error or
    /// a result, never a crash.
    @Test(arguments: FuzzHarnesses.all.map(\.name))
    func mutatedSeedsNeverCrash(_ name: String) throws {
        let harness = try #require(FuzzHarnesses.named(name))
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int(truncatingIfNeeded: state >> 33)
        }
        var ran = 0
        for seed in Self.inputs(Self.root + "/corpus/" + name) where !seed.isEmpty {
            let bytes = [UInt8](seed)
            for cut in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 40)) {
                _ = harness.run(Data(bytes[0..<cut]))
                ran += 1
            }
            for _ in 0..<60 {
                var b = bytes
                for _ in 0..<(1 + next() % 4) {
                    let i = next() % b.count
                    b[i] = [0x00, 0xFF, 0x7F, 0x80, UInt8(truncatingIfNeeded: next())][next() % 5]
                }
                _ = harness.run(Data(b))
                ran += 1
            }
        }
        #expect(ran >= 60)
    }
}
