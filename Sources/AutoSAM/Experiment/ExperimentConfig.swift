import CardiacImaging
import Foundation

/// A method of the experiment: one of the prompt-free heads on the frozen encoder, or a
/// baseline (a UNet trained from scratch, zero-shot SAM with ground-truth box prompts).
public enum ExperimentMethod: Hashable, Comparable, Sendable, CustomStringConvertible {
    case head(HeadKind)
    case unet
    case boxPrompt

    /// The names used on the command line and in results.csv.
    public var name: String {
        switch self {
        case .head(let k): k.rawValue
        case .unet: "unet"
        case .boxPrompt: "box"
        }
    }

    /// The row label of the paper-shaped table.
    public var label: String {
        switch self {
        case .head(.autosam): "AutoSAM"
        case .head(.cnn): "Encoder + CNN"
        case .head(.linear): "Encoder + Linear"
        case .head(let k): "Encoder + \(k.rawValue)"
        case .unet: "UNet (from scratch)"
        case .boxPrompt: "zero-shot SAM, box prompt (GT boxes)"
        }
    }

    public var description: String { name }

    /// Whether the method learns from the training volumes (the box baseline does not).
    public var trains: Bool { self != .boxPrompt }

    /// Table order: UNet, Linear, CNN, AutoSAM (as in the paper), then the box baseline.
    var order: Int {
        switch self {
        case .unet: 0
        case .head(.linear): 1
        case .head(.cnn): 2
        case .head(.autosam): 3
        case .head: 4
        case .boxPrompt: 5
        }
    }

    public static func < (a: Self, b: Self) -> Bool { a.order < b.order }

    public init(name: String) throws {
        switch name.lowercased() {
        case "unet": self = .unet
        case "box": self = .boxPrompt
        default:
            guard let k = HeadKind(rawValue: name.lowercased()) else { throw ExperimentError.unknownMethod(name) }
            self = .head(k)
        }
    }
}

/// Everything that defines a run of the experiment (recorded in summary.json).
public struct ExperimentConfig: Codable, Sendable {
    /// Encoder: a SAM checkpoint path or a registered size name (demo = embedded random weights).
    public var encoder = "demo"
    public var heads: [HeadKind] = [.autosam, .cnn, .linear]
    /// Training volumes (patients, ED + ES) per run, e.g. [1, 5].
    public var volumes = [1, 5]
    public var folds = 1
    /// Test patients, shared by every fold and disjoint from every training and validation set.
    public var testPatients = 20
    /// Validation patients per fold (early stopping), disjoint from everything else.
    public var validationPatients = 1
    public var seed: UInt64 = 0
    /// Training and validation patients drawn round-robin over the diagnosis groups
    /// (`ExperimentSplit.make`); the test set does not change.
    public var stratify = false
    public var unet = true
    public var boxPrompt = true
    /// Train on the plan's augmented views as well as the plain slices (as `autosam fit`
    /// does); the UNet gets the same views.
    public var augment = true
    /// Augmented views per slice (nil: the plan's default).
    public var views: Int?
    /// Elastic deformation of the training views, mm (nil: the plan's default, off).
    public var elasticMM: Double?
    /// Appearance randomisation of the training views (`Augmentation.tissueContrast`,
    /// `Augmentation.shading`; off by default).
    public var tissueContrast = false
    public var shading = 0.0
    /// Find the heart before placing the field (`PreprocessingPlan.localization`), for every
    /// head and the UNet.
    public var localize = false
    /// Inference views per test slice (`PreprocessingPlan.testTimeRotations`), for every head
    /// and the UNet.
    public var testRotations = 1
    /// Fewest training samples per epoch (`TrainingOptions.minimumEpochSamples`; 0: the
    /// paper's epoch, one view per slice).
    public var epochSamples = TrainingOptions.fewShotEpochSamples
    /// Training epochs (the paper: 120) and early-stopping patience.
    public var epochs = 120
    public var patience = 30
    /// The UNet's input side (windowed slices resized to unetSize x unetSize).
    public var unetSize = 128
    /// The UNet's channels per level (the paper's small UNet: 16-32-64-128).
    public var unetChannels = [16, 32, 64, 128]

    public init() {}

    public var methods: [ExperimentMethod] {
        (heads.map { ExperimentMethod.head($0) } + (unet ? [.unet] : []) + (boxPrompt ? [.boxPrompt] : [])).sorted()
    }

    /// Parses "autosam,cnn,linear" (the heads) strictly.
    public static func parseHeads(_ list: String) throws -> [HeadKind] {
        let names = list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        var out: [HeadKind] = []
        for n in names {
            guard let k = HeadKind(rawValue: n.lowercased()) else { throw ExperimentError.unknownHead(n) }
            if !out.contains(k) { out.append(k) }
        }
        return out
    }

    /// Parses "unet,box" (or "none") into (unet, box).
    public static func parseBaselines(_ list: String) throws -> (unet: Bool, box: Bool) {
        var unet = false, box = false
        for n in list.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces).lowercased() }) where !n.isEmpty {
            switch n {
            case "unet": unet = true
            case "box": box = true
            case "none": continue
            default: throw ExperimentError.unknownBaseline(n)
            }
        }
        return (unet, box)
    }

    /// Parses "1,5" strictly.
    public static func parseVolumes(_ list: String) throws -> [Int] {
        let parts = list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        var out: [Int] = []
        for p in parts {
            guard let v = Int(p), v >= 1 else { throw ExperimentError.badOption("--volumes must list positive integers, not '\(p)'") }
            if !out.contains(v) { out.append(v) }
        }
        guard !out.isEmpty else { throw ExperimentError.badOption("--volumes is empty") }
        return out.sorted()
    }

    public func validate() throws {
        guard !methods.isEmpty else { throw ExperimentError.badOption("no heads and no baselines: nothing to run") }
        guard folds >= 1 else { throw ExperimentError.badOption("--folds must be at least 1") }
        guard testPatients >= 1 else { throw ExperimentError.badOption("--test must be at least 1") }
        guard validationPatients >= 0 else { throw ExperimentError.badOption("--validation must be 0 or more") }
        guard epochs >= 1 else { throw ExperimentError.badOption("--epochs must be at least 1") }
        if let views, !Augmentation.viewsRange.contains(views) { throw ExperimentError.badOption("--views must be \(Augmentation.viewsRange)") }
        if !(0...2).contains(shading) { throw ExperimentError.badOption("--shading must be 0...2") }
        if let elasticMM, !Augmentation.elasticRange.contains(elasticMM) { throw ExperimentError.badOption("--elastic must be \(Augmentation.elasticRange) mm") }
        let rotations = PreprocessingPlan.testTimeRotationsRange, samples = TrainingOptions.minimumEpochSamplesRange
        guard rotations.contains(testRotations) else { throw ExperimentError.badOption("--test-rotations must be \(rotations)") }
        guard samples.contains(epochSamples) else { throw ExperimentError.badOption("--epoch-samples must be \(samples)") }
        guard unetSize >= 16, unetSize % 8 == 0 else { throw ExperimentError.badOption("--unet-size must be a multiple of 8, at least 16") }
        guard volumes.allSatisfy({ $0 >= 1 }), !volumes.isEmpty else { throw ExperimentError.badOption("--volumes must list positive integers") }
    }
}

/// Errors of the experiment, each naming what to change.
public enum ExperimentError: Error, Equatable, CustomStringConvertible, LocalizedError {
    case unknownHead(String)
    case unknownBaseline(String)
    case unknownMethod(String)
    case badOption(String)
    /// Too few labelled patients for test + folds x (training + validation).
    case tooFewPatients(have: Int, need: Int, detail: String)
    /// A patient without the ED or ES ground truth the protocol needs.
    case missingGroundTruth(patient: String, frame: Int, path: String)

    public var description: String {
        switch self {
        case .unknownHead(let n): "unknown head '\(n)' (heads: \(HeadKind.allCases.map(\.rawValue).joined(separator: ", ")))"
        case .unknownBaseline(let n): "unknown baseline '\(n)' (baselines: unet, box, none)"
        case .unknownMethod(let n): "unknown method '\(n)' (autosam, cnn, linear, unet, box)"
        case .badOption(let s): s
        case .tooFewPatients(let have, let need, let detail):
            "too few patients: \(have) in the data folder, \(need) needed (\(detail)); lower --folds, --test, --validation or the largest --volumes, or add patients"
        case .missingGroundTruth(let p, let f, let path):
            "\(p): no ground truth for frame \(f) (expected \(path)); every patient needs ED and ES labels (_gt)"
        }
    }

    public var errorDescription: String? { description }
}
