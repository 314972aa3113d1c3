import ArgumentParser
import AutoSAM
import CardiacImaging
import Foundation
import NN
import SegmentAnything
import Tensor

extension Precision: ExpressibleByArgument {}

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Benchmarks (speed and memory).", subcommands: [EncoderBench.self, GEMMBench.self, MLPBench.self, HeadBench.self, FitBench.self])
}

struct EncoderBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encoder",
        abstract: "Seconds per image of the SAM image encoder: warm-up, then median and min of several runs.")

    @Option(help: "Model size (vit_b, vit_l, vit_h) when no checkpoint is given; litemedsam: the fetched LiteMedSAM checkpoint.") var size = "vit_b"
    @Option(help: "Checkpoint (.pth or .safetensors); random weights when omitted.") var checkpoint: String?
    @Option(help: "Timed runs after one warm-up run.") var runs = 3
    @Option(help: "Input side in pixels (default: the model's, 1024 for the official sizes).") var input: Int?
    @Option(help: "Precision of the large products: fp32 or bf16.") var precision: Precision = .fp32

    func run() throws {
        var store: ParameterStore?
        var config: SAMConfig
        if let checkpoint = try checkpoint ?? (size == "litemedsam" ? Weights.liteMedSAMPath() : nil) {
            let t = try SAMCheckpoint.tensors(checkpoint)
            config = try SAMCheckpoint.inferConfig(t)
            store = ParameterStore(t)
            let id = try CheckpointIdentity.of(checkpoint)
            print("checkpoint \(id.file) sha256 \(id.sha256)\(id.official.map { " = official " + $0 } ?? "")")
        } else {
            guard let c = SAMConfig.named(size) else { throw ValidationError("unknown size \(size)") }
            config = c
            store = RandomWeights.imageEncoder(c, seed: 1)
        }
        let encoder = try ImageEncoders.load(config: config, weights: store!, precision: precision)
        store = nil  // the encoder holds what it needs
        let side = input ?? config.imageSize
        var r = SeededRandom(seed: 7)
        let image = Tensor(shape: [3, side, side], data: (0..<(3 * side * side)).map { _ in Float(r.gaussian()) })
        // FLOPs: 2 per multiply-add of every GEMM (attention included).
        let flops = Self.flops(config, side: side)
        print("encoder \(config.name) input \(side)x\(side), \(encoder.precisionChoice.effective.rawValue), \(Parallel.threads) threads, GEMM \(GEMM.backend.rawValue)")
        if let note = encoder.precisionChoice.note { print(note) }
        let clock = ContinuousClock()
        var times: [Double] = []
        for i in 0...runs {
            let d = clock.measure { _ = encoder.encode(image) }
            let s = Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
            if i == 0 { print(String(format: "warm-up: %.3f s", s)) } else { times.append(s) }
            if Profiler.enabled { print("  stages: " + Profiler.report()) }
        }
        times.sort()
        let median = times[times.count / 2]
        print(String(
            format: "median %.3f s, min %.3f s over %d runs; %.1f GFLOPS effective (%.3f TFLOP per image); peak RSS %.2f GB",
            median, times[0], times.count, flops / median / 1e9, flops / 1e12, Self.peakRSSGB()))
    }

    static func flops(_ c: SAMConfig, side: Int) -> Double {
        if let t = c.tinyViT { return tinyViTFlops(t, outChannels: c.outChannels, side: side) }
        let g = Double(side / c.patchSize), n = g * g, e = Double(c.embedDim)
        var f = 2 * n * e * Double(3 * c.patchSize * c.patchSize)  // patch embedding
        let ws = Double(c.windowSize), padded = (g / ws).rounded(.up) * ws
        for i in 0..<c.depth {
            let global = c.globalAttentionIndexes.contains(i)
            let tokens = global ? n : padded * padded
            let t = global ? n : ws * ws
            f += 2 * tokens * e * 3 * e + 2 * n * e * e  // qkv, proj
            f += 2 * 2 * tokens * t * e  // scores and weighted sum, all heads
            f += 2 * 2 * n * e * Double(c.mlpDim)  // MLP
        }
        let o = Double(c.outChannels)
        f += 2 * n * e * o + 2 * n * o * o * 9  // neck
        return f
    }

    /// 2 per multiply-add of TinyViT's convolutions, products and attention (padded windows).
    static func tinyViTFlops(_ t: TinyViTConfig, outChannels o: Int, side: Int) -> Double {
        let d = t.embedDims.map(Double.init)
        var s = Double(side), n = s * s
        var f = 2 * n * (3 * d[0] / 2 + d[0] / 2 * d[0])  // patch embedding, two 1x1
        let hidden = d[0] * t.mbconvExpandRatio
        f += Double(t.depths[0]) * 2 * n * (2 * d[0] * hidden + 9 * hidden)  // MBConv
        for l in 0..<4 {
            if l > 0 {
                let ws = Double(t.windowSizes[l]), e = d[l]
                let perBlock = 2 * n * 3 * e * e + 2 * 2 * n * ws * ws * e + 2 * n * e * e  // qkv, attention (real queries), proj
                    + 2 * n * 9 * e + 2 * 2 * n * e * e * t.mlpRatio  // local conv, MLP
                f += Double(t.depths[l]) * perBlock
            }
            if l < 3 {  // merge into stage l + 1
                let (i, out) = (d[l], d[l + 1])
                let s2 = l == 2 ? s : ((s - 1) / 2).rounded(.down) + 1
                f += 2 * n * i * out + 2 * s2 * s2 * (9 * out + out * out)
                s = s2
                n = s * s
            }
        }
        f += 2 * n * d[3] * Double(o) + 2 * n * Double(o * o * 9)  // neck
        return f
    }

    static func peakRSSGB() -> Double {
        guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return .nan }
        for line in s.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let kb = Double(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
            return kb / 1024 / 1024
        }
        return .nan
    }
}
