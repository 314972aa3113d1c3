import ArgumentParser
import AutoSAM
import Foundation

struct ExperimentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "experiment",
        abstract: "The paper's protocol: heads x training volumes x folds, a UNet and a box-prompt baseline, on an ACDC-layout folder.",
        discussion: """
            A seeded split picks a test set of --test patients shared by every fold and, per fold, \
            training and validation patients disjoint from it and from the other folds; an n-volume \
            run trains on the fold's first n training patients (ED + ES). Every head trains with the \
            same trainer as `autosam fit` on cached embeddings (computed once per slice); every \
            method segments the test volumes as `autosam segment` does. Writes results.csv (one row \
            per fold x method x volumes x test volume), table.md (the paper's table: mean +- std over \
            folds) and summary.json to --out, rewritten after every run.
            """)

    @Option(help: "ACDC-layout dataset folder (patientNNN/Info.cfg, frames and _gt).") var data: String
    @Option(help: "Encoder: litemedsam (the fetched LiteMedSAM checkpoint, the default), a SAM checkpoint path, or a size name for seeded random weights (demo).") var encoder = "litemedsam"
    @Option(help: "Heads, comma-separated: autosam, cnn, linear, context (ours).") var heads = "autosam,cnn,linear"
    @Option(help: "Training volume counts, comma-separated.") var volumes = "1,5"
    @Option(help: "Folds (independent training sets).") var folds = 1
    @Option(help: "Test patients (shared by all folds).") var test = 20
    @Option(help: "Validation patients per fold (early stopping).") var validation = 1
    @Option(help: "Seed of the split and of the training.") var seed: UInt64 = 0
    @Flag(help: "Draw each fold's training and validation patients round-robin over the diagnosis groups (Info.cfg Group); the test set is unchanged.") var stratify = false
    @Option(help: "Baselines, comma-separated: unet, box (or none).") var baselines = "unet,box"
    @Option(help: "Output folder.") var out: String
    @Option(help: "Training epochs (the paper: 120).") var epochs = 120
    @Option(help: "Early-stopping patience in epochs.") var patience = 30
    @Option(help: "UNet input side (multiple of 8).") var unetSize = 128
    @Option(help: "Embedding cache folder.") var cache = ".autosam-cache"
    @Flag(help: "Train on the plain slices only (no augmented views).") var noAugment = false
    @Option(help: "Augmented views per training slice (default 16; each is one encoder run per slice).") var views: Int?
    @Option(help: "Elastic deformation of the training views: standard deviation of the smooth displacement in mm (default 0: off).") var elastic: Double?
    @Flag(help: "Random contrast per tissue in the training views (blood pools and myocardium moved to random mean intensities).") var tissueContrast = false
    @Option(help: "Smooth random shading of the training views, largest log amplitude (0-2; default 0: off).") var shading = 0.0
    @Flag(help: "Find the heart on a coarse field first and centre the field on it (every head and the UNet; trained with coarse views).") var localize = false
    @Option(help: "Fewest training samples per epoch: every slice's views are drawn again until an epoch holds this many (0: one view per slice, the paper's epoch).") var epochSamples = TrainingOptions.fewShotEpochSamples
    @Option(help: "Inference views per test slice: the plain field and its rotations by multiples of 360/N degrees, probabilities averaged.") var testRotations = 1

    func run() throws {
        var c = ExperimentConfig()
        do {
            c.encoder = encoder
            c.heads = try ExperimentConfig.parseHeads(heads)
            c.volumes = try ExperimentConfig.parseVolumes(volumes)
            (c.unet, c.boxPrompt) = try ExperimentConfig.parseBaselines(baselines)
            c.folds = folds
            c.testPatients = test
            c.validationPatients = validation
            c.seed = seed
            c.stratify = stratify
            c.epochs = epochs
            c.patience = patience
            c.unetSize = unetSize
            c.augment = !noAugment
            c.views = views
            c.elasticMM = elastic
            c.testRotations = testRotations
            c.tissueContrast = tissueContrast
            c.shading = shading
            c.localize = localize
            c.epochSamples = epochSamples
            try c.validate()
        } catch let e as ExperimentError {
            throw ValidationError(e.description)
        }
        try ExperimentRunner(config: c, data: data, out: out, cache: cache) { print($0); fflush(nil) }.run()
    }
}
