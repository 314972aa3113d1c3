import ArgumentParser
import CardiacImaging
import Foundation
import AutoSAM
import Tensor

@main
struct AutoSAMCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "autosam",
        abstract: "Cardiac MRI segmentation with a frozen SAM encoder and a small trained head.",
        version: BuildInfo.version,
        subcommands: [PhantomCommand.self, StatsCommand.self, FitCommand.self, SegmentCommand.self, EvaluateCommand.self, BenchCommand.self, ParityCommand.self, InfoCommand.self, DicomPhantomCommand.self, DicomInfoCommand.self, DicomToNIfTICommand.self, DicomSegCommand.self, ModelCommand.self, WatchCommand.self, StatusCommand.self, WebCommand.self, WebUserCommand.self, SuggestCommand.self, ExperimentCommand.self])
}

struct InfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info", abstract: "Print the version and the libraries in use.")

    func run() throws {
        print("autosam \(BuildInfo.version)")
        print("BLAS: \(GEMM.blasConfig), threads \(GEMM.blasThreads)")
        print("CPU: \(BuildInfo.cpuModel)")
        print("CPU features: \(CPUCapabilities.features)")
        print("kernels: element-wise \(CPUCapabilities.kernelISA), oneDNN \(CPUCapabilities.onednnISA)")
        let bf16 = Precision.resolve(.bf16)
        print("precision bf16: " + (bf16.note ?? "available (oneDNN bfloat16 products)"))
        let weights = (try? Weights.liteMedSAMPath()).map { "present (\($0))" } ?? "not fetched (scripts/fetch_weights.sh)"
        print("weights folder: \(Weights.folder); LiteMedSAM \(weights)")
    }
}
