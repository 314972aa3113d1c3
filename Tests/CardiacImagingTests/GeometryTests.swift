import Testing
@testable import CardiacImaging

@Suite struct GeometryTests {
    @Test func spacingOriginDirectionRoundTrip() {
        let dir: [SIMD3<Double>] = [SIMD3(0, 1, 0), SIMD3(-1, 0, 0), SIMD3(0, 0, 1)]
        let g = VolumeGeometry(spacing: SIMD3(1.5, 1.25, 8), origin: SIMD3(10, -20, 30), direction: dir)
        #expect(abs(g.spacing.x - 1.5) < 1e-12)
        #expect(abs(g.spacing.y - 1.25) < 1e-12)
        #expect(abs(g.spacing.z - 8) < 1e-12)
        #expect(g.origin == SIMD3(10, -20, 30))
        #expect(abs(g.voxelVolume - 1.5 * 1.25 * 8) < 1e-9)
        // World position of voxel (1, 1, 1): origin + 1.5*(0,1,0) + 1.25*(-1,0,0) + 8*(0,0,1)
        let w = g.world(SIMD3(1, 1, 1))
        #expect(abs(w.x - (10 - 1.25)) < 1e-12 && abs(w.y - (-20 + 1.5)) < 1e-12 && abs(w.z - 38) < 1e-12)
        // The quaternion form reproduces the same affine.
        #expect(g.nifti.qformAffine.maxAbsDifference(g.affine) < 1e-9)
    }
}
