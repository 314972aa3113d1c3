import ArgumentParser
import CardiacImaging
import Foundation
import Tensor

struct GEMMBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gemm", abstract: "GFLOPS of each GEMM backend on the encoder's shapes, in one sitting.")

    @Option(help: "Repetitions per shape and backend (best is reported).") var repeats = 5

    func run() throws {
        // (M, N, K, transB): vit_b qkv, proj, MLP in and out, and one windowed-attention head.
        let shapes: [(String, Int, Int, Int, Bool)] = [
            ("qkv 4900x2304x768", 4900, 2304, 768, true), ("proj 4096x768x768", 4096, 768, 768, true),
            ("mlp1 4096x3072x768", 4096, 3072, 768, true), ("mlp2 4096x768x3072", 4096, 768, 3072, true),
            ("scores 196x196x64", 196, 196, 64, true), ("attn@v 196x64x196", 196, 64, 196, false),
            ("g-scores 64x4096x64", 64, 4096, 64, true), ("g-attn@v 64x64x4096", 64, 64, 4096, false),
        ]
        print("threads \(Parallel.threads); OpenBLAS: \(GEMM.blasConfig)")
        for (name, m, n, k, tb) in shapes {
            var line = name.padding(toLength: 22, withPad: " ", startingAt: 0)
            for backend in GEMMBackend.allCases {
                GEMM.backend = backend
                let a = [Float](repeating: 0.5, count: m * k), b = [Float](repeating: 0.25, count: k * n)
                var c = [Float](repeating: 0, count: m * n)
                let small = m * n * k < 20_000_000
                let inner = small ? 200 : 1
                var best = Double.infinity
                for _ in 0..<repeats {
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    a.withUnsafeBufferPointer { ap in
                        b.withUnsafeBufferPointer { bp in
                            c.withUnsafeMutableBufferPointer { cp in
                                for _ in 0..<inner {
                                    GEMM.sgemm(false, tb, m: m, n: n, k: k, a: ap.baseAddress!, lda: k, b: bp.baseAddress!,
                                               ldb: tb ? k : n, c: cp.baseAddress!, ldc: n)
                                }
                            }
                        }
                    }
                    best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9 / Double(inner))
                }
                line += String(format: "  %@ %7.1f GFLOPS", backend.rawValue, 2 * Double(m * n * k) / best / 1e9)
            }
            print(line)
        }
        GEMM.backend = GEMM.defaultBackend
    }
}

/// The bf16 encoder MLP of one 1024-row chunk (vit_b: 768 -> 3072 -> 768, bias and GELU fused
/// into the first product) with its hidden activation written in float32 and converted, or
/// left in bfloat16 by the first product: the two alternate in one process, so the host's
/// slow phases hit both alike.
struct MLPBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mlp", abstract: "bf16 encoder MLP chunk: float32 hidden activation against bfloat16, alternating in one process.")

    @Option(help: "Timed pairs (after 5 warm-up pairs).") var pairs = 55

    func run() throws {
        var g = SplitMix64(seed: 5)
        func random(_ shape: [Int], _ scale: Double) -> Tensor {
            Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in Float((g.unit() * 2 - 1) * scale) })
        }
        let x = random([1024, 768], 2)
        let lin1 = Linear(weight: random([3072, 768], 0.05), bias: random([3072], 0.1), precision: .bf16, activation: .gelu)
        let lin2 = Linear(weight: random([768, 3072], 0.05), bias: random([768], 0.1), precision: .bf16)
        guard lin1.precision == .bf16, lin2.precision == .bf16, lin1.bf16Output(x) != nil else {
            throw ValidationError("oneDNN makes no bf16 matmul with a bf16 output on this CPU")
        }
        var viaFloat: [Double] = [], viaBF16: [Double] = []
        for i in 0..<(2 * (pairs + 5)) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            if i % 2 == 0 { _ = lin2(lin1(x)) } else { _ = lin2(lin1.bf16Output(x)!) }
            let s = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
            if i >= 10 { if i % 2 == 0 { viaFloat.append(s) } else { viaBF16.append(s) } }
        }
        func median(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }
        let f = median(viaFloat), b = median(viaBF16)
        print(String(format: "threads %d, bf16 products; %d pairs: float32 hidden median %.2f ms, bfloat16 hidden median %.2f ms (ratio %.3f)",
                     Parallel.threads, pairs, f, b, b / f))
    }
}
