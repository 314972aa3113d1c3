import Tensor
import Testing

/// The unfolding behind every convolution against the definition, for strides, paddings and
/// odd sizes the models use (3x3 pad 1, 16x16 stride 16 patch embedding, stride 2 downsampling).
@Suite struct ConvUnfoldTests {
    @Test(arguments: [(3, 1, 1), (3, 2, 1), (2, 2, 0), (5, 1, 2), (4, 3, 0), (1, 1, 0)])
    func unfoldAndAdjointMatchTheDefinition(k: Int, stride: Int, padding: Int) {
        let (c, h, w) = (3, 11, 8)
        let x = Tensor(shape: [c, h, w], data: (0..<(c * h * w)).map { Float($0 % 37) - 18 })
        let oh = (h + 2 * padding - k) / stride + 1, ow = (w + 2 * padding - k) / stride + 1
        var expected = [Float](repeating: 0, count: c * k * k * oh * ow)
        for ci in 0..<c { for ky in 0..<k { for kx in 0..<k { for oy in 0..<oh { for ox in 0..<ow {
            let iy = oy * stride - padding + ky, ix = ox * stride - padding + kx
            if iy >= 0 && iy < h && ix >= 0 && ix < w {
                expected[((ci * k + ky) * k + kx) * oh * ow + oy * ow + ox] = x.data[(ci * h + iy) * w + ix]
            }
        } } } } }
        let cols = Conv.im2col(x, kh: k, kw: k, stride: stride, padding: padding)
        #expect(cols == expected)
        // Adjoint: <im2col(x), y> == <x, col2im(y)> for any y.
        let y = (0..<cols.count).map { Float(($0 * 7) % 11) - 5 }
        let back = Conv.col2im(y, shape: [c, h, w], kh: k, kw: k, stride: stride, padding: padding)
        let lhs = zip(cols, y).reduce(Float(0)) { $0 + $1.0 * $1.1 }
        let rhs = zip(x.data, back.data).reduce(Float(0)) { $0 + $1.0 * $1.1 }
        #expect(lhs == rhs)
    }
}
