import Foundation
import Testing
@testable import CardiacImaging

/// Helpers shared by MetricsTests and StatsTests, namespaced to keep clear of other test files.
enum MetricsFixtures {
    /// Deterministic generator for random test grids.
    struct RNG: RandomNumberGenerator {
        var state: UInt64
        init(seed: UInt64) { state = seed }
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static func axisGeometry(_ spacing: SIMD3<Double>) -> VolumeGeometry {
        VolumeGeometry(
            spacing: spacing, origin: SIMD3(0, 0, 0),
            direction: [SIMD3(1, 0, 0), SIMD3(0, 1, 0), SIMD3(0, 0, 1)])
    }

    /// A label map whose value at (i, j, k) is `fill(i, j, k)`.
    static func labelMap(
        _ shape: GridShape, spacing: SIMD3<Double>, _ fill: (Int, Int, Int) -> UInt8
    ) -> LabelMap {
        var labels = [UInt8]()
        labels.reserveCapacity(shape.voxelsPerFrame)
        for k in 0..<shape.nz { for j in 0..<shape.ny { for i in 0..<shape.nx { labels.append(fill(i, j, k)) } } }
        return LabelMap(shape: shape, geometry: axisGeometry(spacing), labels: labels)
    }

    /// Index -> (i, j, k).
    static func coords(_ idx: Int, _ s: GridShape) -> SIMD3<Double> {
        SIMD3(Double(idx % s.nx), Double((idx / s.nx) % s.ny), Double(idx / (s.nx * s.ny)))
    }

    /// O(n^2) squared EDT: min over all features of the squared mm distance.
    static func bruteSquaredEDT(_ f: [Bool], _ s: GridShape, _ sp: SIMD3<Double>) -> [Double] {
        let feats = f.indices.filter { f[$0] }.map { coords($0, s) }
        return f.indices.map { idx in
            let p = coords(idx, s)
            return feats.map { q in let d = (p - q) * sp; return (d * d).sum() }.min() ?? .infinity
        }
    }

    /// Surface by the definition: foreground with a face neighbour outside the mask or grid.
    static func bruteSurface(_ m: [Bool], _ s: GridShape) -> [Bool] {
        m.indices.map { idx in
            guard m[idx] else { return false }
            let p = coords(idx, s)
            let (i, j, k) = (Int(p.x), Int(p.y), Int(p.z))
            for (di, dj, dk) in [(1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)] {
                let (a, b, c) = (i + di, j + dj, k + dk)
                if a < 0 || b < 0 || c < 0 || a >= s.nx || b >= s.ny || c >= s.nz { return true }
                if !m[(c * s.ny + b) * s.nx + a] { return true }
            }
            return false
        }
    }

    /// Directed surface distances (mm) by brute force.
    static func bruteDirected(_ a: [Bool], _ b: [Bool], _ s: GridShape, _ sp: SIMD3<Double>) -> [Double] {
        let sa = bruteSurface(a, s), sb = bruteSurface(b, s)
        let pb = sb.indices.filter { sb[$0] }.map { coords($0, s) * sp }
        return sa.indices.filter { sa[$0] }.map { idx in
            let p = coords(idx, s) * sp
            return pb.map { q in let d = p - q; return (d * d).sum().squareRoot() }.min()!
        }
    }

    static func randomMask(_ n: Int, density: Double, _ rng: inout RNG) -> [Bool] {
        (0..<n).map { _ in Double.random(in: 0..<1, using: &rng) < density }
    }

    /// Union of a few random ellipsoids: blob-like masks with real surfaces.
    static func blobMask(_ s: GridShape, blobs: Int, _ rng: inout RNG) -> [Bool] {
        var m = [Bool](repeating: false, count: s.voxelsPerFrame)
        for _ in 0..<blobs {
            let c = SIMD3(
                Double.random(in: 0..<Double(s.nx), using: &rng), Double.random(in: 0..<Double(s.ny), using: &rng),
                Double.random(in: 0..<Double(s.nz), using: &rng))
            let r = SIMD3(
                Double.random(in: 1.5...5, using: &rng), Double.random(in: 1.5...5, using: &rng),
                Double.random(in: 0.8...2.5, using: &rng))
            for idx in m.indices {
                let d = (coords(idx, s) - c) / r
                if (d * d).sum() <= 1 { m[idx] = true }
            }
        }
        return m
    }
}

@Suite struct MetricsTests {
    @Test func edtMatchesBruteForceOnRandomGrids() {
        var rng = MetricsFixtures.RNG(seed: 42)
        let shapes = [GridShape(7, 6, 5), GridShape(9, 4, 3), GridShape(1, 8, 6), GridShape(6, 1, 1),
                      GridShape(5, 7, 1), GridShape(11, 9, 4)]
        for (n, s) in shapes.enumerated() {
            let sp = SIMD3(Double.random(in: 0.5...2, using: &rng), Double.random(in: 0.5...2, using: &rng),
                           Double.random(in: 2...10, using: &rng))
            let f = MetricsFixtures.randomMask(s.voxelsPerFrame, density: n.isMultiple(of: 2) ? 0.05 : 0.2, &rng)
            let fast = DistanceTransform.squaredDistances(features: f, shape: s, spacing: sp)
            let slow = MetricsFixtures.bruteSquaredEDT(f, s, sp)
            for idx in f.indices {
                if slow[idx].isInfinite { #expect(fast[idx].isInfinite) } else {
                    #expect(abs(fast[idx] - slow[idx]) <= 1e-9 * max(1, slow[idx]), "shape \(s) voxel \(idx)")
                }
            }
        }
    }

    @Test func edtWithoutFeaturesIsInfinite() {
        let d = DistanceTransform.distances(
            features: [Bool](repeating: false, count: 24), shape: GridShape(4, 3, 2), spacing: SIMD3(1, 1, 1))
        #expect(d.allSatisfy { $0.isInfinite })
        let one = DistanceTransform.distances(
            features: [true] + [Bool](repeating: false, count: 23), shape: GridShape(4, 3, 2),
            spacing: SIMD3(1.5, 2, 8))
        // Voxel (3, 2, 1): sqrt(4.5^2 + 4^2 + 8^2).
        #expect(abs(one[23] - (4.5 * 4.5 + 16 + 64).squareRoot()) < 1e-12)
    }

    @Test func surfaceIncludesGridBorderAndExcludesInterior() {
        let full = [Bool](repeating: true, count: 64)
        let s = SurfaceDistances.surface(full, shape: GridShape(4, 4, 4))
        #expect(s.filter { $0 }.count == 56)  // 64 minus the 2x2x2 interior
        #expect(SurfaceDistances.surface([Bool](repeating: true, count: 9), shape: GridShape(3, 3, 1))
            .allSatisfy { $0 })
        var rng = MetricsFixtures.RNG(seed: 7)
        let shape = GridShape(8, 7, 5)
        let m = MetricsFixtures.randomMask(shape.voxelsPerFrame, density: 0.7, &rng)
        #expect(SurfaceDistances.surface(m, shape: shape) == MetricsFixtures.bruteSurface(m, shape))
    }

    @Test func singleVoxelsThreeSlicesApart() throws {
        let shape = GridShape(5, 5, 6), sp = SIMD3(1.5, 1.5, 8.0)
        let a = MetricsFixtures.labelMap(shape, spacing: sp) { i, j, k in i == 2 && j == 2 && k == 1 ? 3 : 0 }
        let b = MetricsFixtures.labelMap(shape, spacing: sp) { i, j, k in i == 2 && j == 2 && k == 4 ? 3 : 0 }
        let m = try SegmentationMetrics.evaluate(prediction: a, reference: b, label: 3)
        #expect(m.dice == 0)
        #expect(m.assd == 24 && m.hd95 == 24 && m.hausdorff == 24)
        #expect(m.predictedVoxels == 1 && m.referenceVoxels == 1 && m.overlapVoxels == 0)
    }

    /// Two 3x3x3 cubes `d` voxels apart along one axis: the A surface has 9 voxels at each
    /// end face and 8 in the middle layer, at (d-2), (d-1) and d steps from B's near face, so
    /// each directed mean is (d-1) steps, and 95 % of the 52 pooled distances reach d steps.
    @Test(arguments: [(0, 4, 1.5), (2, 4, 8.0), (1, 5, 1.25)])
    func cubesOffsetAlongAnAxis(axis: Int, d: Int, step: Double) throws {
        var sp = SIMD3(1.5, 1.25, 8.0)
        sp[axis] = step
        let shape = GridShape(12, 12, 12)
        func cube(_ shift: Int) -> LabelMap {
            MetricsFixtures.labelMap(shape, spacing: sp) { i, j, k in
                var p = SIMD3(i, j, k)
                p[axis] -= shift
                return (0..<3).allSatisfy { (1...3).contains(p[$0]) } ? 2 : 0
            }
        }
        let m = try SegmentationMetrics.evaluate(prediction: cube(0), reference: cube(d), label: 2)
        #expect(m.dice == 0)
        #expect(abs(m.assd! - Double(d - 1) * step) < 1e-12)
        #expect(abs(m.hd95! - Double(d) * step) < 1e-12)
        #expect(abs(m.hausdorff! - Double(d) * step) < 1e-12)
    }

    @Test func identicalAndDisjointMasks() throws {
        let shape = GridShape(10, 9, 4), sp = SIMD3(1.5, 1.5, 8.0)
        let a = MetricsFixtures.labelMap(shape, spacing: sp) { i, j, k in i < 5 ? (k < 2 ? 1 : 3) : (j > 3 ? 2 : 0) }
        let same = try SegmentationMetrics.evaluate(prediction: a, reference: a)
        for c in same.classes {
            #expect(c.dice == 1 && c.assd == 0 && c.hd95 == 0 && c.hausdorff == 0)
        }
        #expect(same.meanDice == 1 && same.meanASSD == 0)
        let b = MetricsFixtures.labelMap(shape, spacing: sp) { i, _, _ in i >= 7 ? 3 : 0 }
        let c = MetricsFixtures.labelMap(shape, spacing: sp) { i, _, _ in i <= 2 ? 3 : 0 }
        let lv = try SegmentationMetrics.evaluate(prediction: b, reference: c, label: 3)
        #expect(lv.dice == 0)
        // Slabs i 7...9 and i 0...2 across the grid: surfaces are the i faces (36 voxels each)
        // plus the middle layer's grid-border voxels (22), 5, 7 and 6 steps of 1.5 mm from
        // the other slab's near face: mean 6 steps both ways, maximum 7 steps.
        #expect(abs(lv.assd! - 6 * 1.5) < 1e-12)
        #expect(abs(lv.hausdorff! - 7 * 1.5) < 1e-12)
        #expect(try SegmentationMetrics.dice(prediction: b, reference: c, label: 3) == 0)
    }

    @Test func diceOfPartialOverlap() throws {
        let shape = GridShape(10, 1, 1), sp = SIMD3(1.0, 1.0, 1.0)
        let a = MetricsFixtures.labelMap(shape, spacing: sp) { i, _, _ in i < 4 ? 1 : 0 }
        let b = MetricsFixtures.labelMap(shape, spacing: sp) { i, _, _ in i >= 2 && i < 8 ? 1 : 0 }
        // |A| = 4, |B| = 6, overlap 2: Dice = 4 / 10.
        #expect(abs(try SegmentationMetrics.dice(prediction: a, reference: b, label: 1) - 0.4) < 1e-15)
    }

    @Test func sphereVersusShiftedSphere() throws {
        let shape = GridShape(16, 16, 10), sp = SIMD3(1.25, 1.25, 3.0)
        func sphere(_ cj: Double) -> [Bool] {
            (0..<shape.voxelsPerFrame).map { idx in
                let d = (MetricsFixtures.coords(idx, shape) - SIMD3(7.5, cj, 4.5)) * sp
                return (d * d).sum() <= 36
            }
        }
        let a = sphere(7.5), b = sphere(8.5)
        let s = try #require(SurfaceDistances.compute(a, b, shape: shape, spacing: sp))
        let ab = MetricsFixtures.bruteDirected(a, b, shape, sp), ba = MetricsFixtures.bruteDirected(b, a, shape, sp)
        #expect(s.aToB.count == ab.count && s.bToA.count == ba.count)
        for (x, y) in zip(s.aToB, ab) { #expect(abs(x - y) < 1e-9) }
        for (x, y) in zip(s.bToA, ba) { #expect(abs(x - y) < 1e-9) }
        // A shift by one voxel moves every surface voxel onto one of the other surface.
        #expect(s.hausdorff <= 1.25 + 1e-12 && s.assd > 0 && s.assd < 1.25)
        let swapped = try #require(SurfaceDistances.compute(b, a, shape: shape, spacing: sp))
        #expect(abs(swapped.assd - s.assd) < 1e-12 && abs(swapped.hd95 - s.hd95) < 1e-12)
    }

    @Test func surfaceDistancesMatchBruteForceOnRandomMasks() throws {
        var rng = MetricsFixtures.RNG(seed: 2024)
        for trial in 0..<6 {
            let shape = GridShape(9 + trial, 8, 3 + trial % 3)
            let sp = SIMD3(Double.random(in: 0.7...1.8, using: &rng), Double.random(in: 0.7...1.8, using: &rng),
                           Double.random(in: 5...10, using: &rng))
            let a = MetricsFixtures.randomMask(shape.voxelsPerFrame, density: 0.35, &rng)
            let b = MetricsFixtures.blobMask(shape, blobs: 2, &rng)
            guard let s = SurfaceDistances.compute(a, b, shape: shape, spacing: sp) else { continue }
            let ab = MetricsFixtures.bruteDirected(a, b, shape, sp), ba = MetricsFixtures.bruteDirected(b, a, shape, sp)
            let assd = (ab.reduce(0, +) / Double(ab.count) + ba.reduce(0, +) / Double(ba.count)) / 2
            #expect(abs(s.assd - assd) < 1e-9)
            #expect(abs(s.hd95 - SurfaceDistances.percentile(ab + ba, 95)) < 1e-9)
            #expect(abs(s.hausdorff - (ab + ba).max()!) < 1e-9)
        }
    }

    @Test func percentileInterpolatesLikeNumpy() {
        #expect(abs(SurfaceDistances.percentile([4, 1, 3, 2], 95) - 3.85) < 1e-12)
        #expect(SurfaceDistances.percentile([5], 95) == 5)
        #expect(SurfaceDistances.percentile([1, 2, 3], 50) == 2)
        #expect(SurfaceDistances.percentile([1, 2, 3], 100) == 3)
        #expect(SurfaceDistances.percentile([0, 10], 25) == 2.5)
    }

    @Test func emptyMaskConventions() throws {
        let shape = GridShape(6, 6, 3), sp = SIMD3(1.5, 1.5, 8.0)
        let a = MetricsFixtures.labelMap(shape, spacing: sp) { i, j, _ in i < 3 && j < 3 ? 3 : 0 }
        let empty = MetricsFixtures.labelMap(shape, spacing: sp) { _, _, _ in 0 }
        let both = try SegmentationMetrics.evaluate(prediction: empty, reference: empty, label: 3)
        #expect(both.dice == 1 && both.assd == 0 && both.hd95 == 0 && both.hausdorff == 0)
        for (p, r) in [(a, empty), (empty, a)] {
            let one = try SegmentationMetrics.evaluate(prediction: p, reference: r, label: 3)
            #expect(one.dice == 0 && one.assd == nil && one.hd95 == nil && one.hausdorff == nil)
        }
        #expect(SegmentationMetrics.dice([false, false], [false, false]) == 1)
        // Per volume: RV and Myo are empty in both (0 mm), LV is missing from the prediction.
        let v = try SegmentationMetrics.evaluate(prediction: empty, reference: a)
        #expect(abs(v.meanDice - 2.0 / 3) < 1e-15)
        #expect(v.meanASSD == 0 && v[3]?.assd == nil)
        let json = String(decoding: try v.jsonData(), as: UTF8.self)
        #expect(json.contains("\"assd\" : null") && json.contains("\"hd95\" : null"))
        let back = try JSONDecoder().decode(VolumeMetrics.self, from: try v.jsonData())
        #expect(back == v)
        let none = VolumeMetrics(classes: [v[3]!], spacing: sp)
        #expect(none.meanASSD == nil && none.meanHD95 == nil)
    }

    @Test func gridMismatchThrows() {
        let sp = SIMD3(1.5, 1.5, 8.0)
        let a = MetricsFixtures.labelMap(GridShape(4, 4, 2), spacing: sp) { _, _, _ in 1 }
        let b = MetricsFixtures.labelMap(GridShape(4, 4, 3), spacing: sp) { _, _, _ in 1 }
        let c = MetricsFixtures.labelMap(GridShape(4, 4, 2), spacing: SIMD3(1.5, 1.5, 10)) { _, _, _ in 1 }
        #expect(throws: ImagingError.self) { try SegmentationMetrics.evaluate(prediction: a, reference: b) }
        #expect(throws: ImagingError.self) { try SegmentationMetrics.dice(prediction: a, reference: c, label: 1) }
    }
}

/// Cross-check against scipy.ndimage used exactly as medpy uses it; skipped without scipy.
extension MetricsTests {
    struct Reference: Decodable {
        var name: String
        var dice, asd_ab, asd_ba, assd, hd95, hd: Double
    }

    @Test(.enabled(if: PythonTool.shouldRun("numpy", "scipy.ndimage"), "python3 with numpy and scipy is needed"))
    func matchesScipyMedpySemantics() throws {
        let dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("metrics-xcheck-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }

        var rng = MetricsFixtures.RNG(seed: 99)
        var manifest: [[String: Any]] = []
        var ours: [String: SurfaceDistances] = [:]
        var dices: [String: Double] = [:]
        let shapes = [GridShape(20, 18, 7), GridShape(12, 10, 5), GridShape(24, 20, 1), GridShape(16, 16, 9),
                      GridShape(30, 26, 8)]
        for (n, shape) in shapes.enumerated() {
            let sp = SIMD3(Double.random(in: 0.6...2, using: &rng), Double.random(in: 0.6...2, using: &rng),
                           Double.random(in: 2...10, using: &rng))
            let a = n == 1 ? MetricsFixtures.randomMask(shape.voxelsPerFrame, density: 0.3, &rng) : MetricsFixtures.blobMask(shape, blobs: 3, &rng)
            let b = MetricsFixtures.blobMask(shape, blobs: 2 + n % 2, &rng)
            guard let s = SurfaceDistances.compute(a, b, shape: shape, spacing: sp) else { continue }
            let name = "case\(n)"
            ours[name] = s
            dices[name] = SegmentationMetrics.dice(a, b)
            try Data(a.map { $0 ? 1 : 0 }).write(to: dir.appendingPathComponent("\(name)_a.raw"))
            try Data(b.map { $0 ? 1 : 0 }).write(to: dir.appendingPathComponent("\(name)_b.raw"))
            manifest.append([
                "name": name, "shape": [shape.nx, shape.ny, shape.nz], "spacing": [sp.x, sp.y, sp.z],
                "a": "\(name)_a.raw", "b": "\(name)_b.raw",
            ])
        }
        #expect(ours.count >= 4)
        try JSONSerialization.data(withJSONObject: manifest).write(to: dir.appendingPathComponent("manifest.json"))
        let out = try #require(PythonTool.run([PythonTool.scriptFolder + "/surface_reference.py", dir.path]), "surface_reference.py failed")
        let refs = try JSONDecoder().decode([Reference].self, from: Data(out.utf8))
        #expect(refs.count == ours.count)
        for r in refs {
            let s = try #require(ours[r.name])
            #expect(abs(s.meanAToB - r.asd_ab) < 1e-6, "\(r.name) asd A->B")
            #expect(abs(s.meanBToA - r.asd_ba) < 1e-6, "\(r.name) asd B->A")
            #expect(abs(s.assd - r.assd) < 1e-6, "\(r.name) assd")
            #expect(abs(s.hd95 - r.hd95) < 1e-6, "\(r.name) hd95")
            #expect(abs(s.hausdorff - r.hd) < 1e-6, "\(r.name) hd")
            #expect(abs(dices[r.name]! - r.dice) < 1e-12, "\(r.name) dice")
        }
    }
}
