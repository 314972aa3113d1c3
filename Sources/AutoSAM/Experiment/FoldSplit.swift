import Foundation
import Tensor

/// One fold of the protocol: its training patients (the first `n` of them train the n-volume
/// runs, so the 1-volume set is inside the 5-volume set) and its validation patients.
public struct Fold: Codable, Equatable, Sendable {
    public var index: Int
    public var train: [String]
    public var validation: [String]

    /// The training patients of an n-volume run.
    public func train(volumes n: Int) -> [String] { Array(train.prefix(n)) }
}

/// The split of a run: one test set shared by every fold, and per fold training and
/// validation patients, all pairwise disjoint (test vs every fold, and folds among themselves).
public struct ExperimentSplit: Codable, Equatable, Sendable {
    public var seed: UInt64
    public var test: [String]
    public var folds: [Fold]

    /// A seeded permutation of the patients (sorted first, so folder listing order does not
    /// matter): the first `test` are the test set; then each fold takes `maxVolumes` training
    /// and `validation` validation patients in turn. The same seed gives the same split.
    ///
    /// `groups` (patient -> diagnosis group, ACDC's Info.cfg `Group`), when given, stratifies
    /// the training side: the test set is the same as without it, and the remaining patients
    /// are taken round-robin over the groups (groups in order of their first patient in the
    /// permutation, each group's patients in permutation order), so a fold's training patients
    /// cover as many groups as it has patients. The patients a clinician would choose to label.
    public static func make(
        patients: [String], test: Int, folds: Int, maxVolumes: Int, validation: Int, seed: UInt64, groups: [String: String]? = nil
    ) throws -> ExperimentSplit {
        guard Set(patients).count == patients.count else { throw ExperimentError.badOption("patient names are not unique") }
        let perFold = maxVolumes + validation
        let need = test + folds * perFold
        guard patients.count >= need else {
            throw ExperimentError.tooFewPatients(
                have: patients.count, need: need,
                detail: "\(test) test + \(folds) fold(s) x (\(maxVolumes) training + \(validation) validation)")
        }
        var order = patients.sorted()
        var rng = SplitMix64(seed: seed)
        for i in stride(from: order.count - 1, to: 0, by: -1) {
            order.swapAt(i, Int(rng.next() % UInt64(i + 1)))
        }
        let testSet = Array(order[0..<test])
        if let groups {
            var byGroup: [String: [String]] = [:], groupOrder: [String] = []
            for id in order[test...] {
                let g = groups[id] ?? "unknown"
                if byGroup[g] == nil { groupOrder.append(g) }
                byGroup[g, default: []].append(id)
            }
            var rest: [String] = []
            for round in 0... {
                let before = rest.count
                for g in groupOrder where round < byGroup[g]!.count { rest.append(byGroup[g]![round]) }
                if rest.count == before { break }
            }
            order = testSet + rest
        }
        var out: [Fold] = []
        for f in 0..<folds {
            let start = test + f * perFold
            out.append(Fold(index: f, train: Array(order[start..<(start + maxVolumes)]),
                            validation: Array(order[(start + maxVolumes)..<(start + perFold)])))
        }
        return ExperimentSplit(seed: seed, test: testSet, folds: out)
    }
}
