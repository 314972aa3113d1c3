import Tensor

// Pooling for the UNet baseline of the experiment. Backward beside forward, like the other
// primitives. (Channel concatenation is `Variable.concatRows` on [C, H, W] parts.)

extension Variable {
    /// 2x2 max pooling with stride 2 on x[C, H, W] (H and W even) -> [C, H/2, W/2]. The
    /// gradient goes to the maximum of each window (the first one on ties, as PyTorch).
    public func maxPool2x2() -> Variable {
        let xv = value
        precondition(xv.rank == 3, "maxPool2x2 needs [C, H, W], not \(xv.shape)")
        let (c, h, w) = (xv.shape[0], xv.shape[1], xv.shape[2])
        precondition(h % 2 == 0 && w % 2 == 0, "maxPool2x2 needs even H and W, not \(h)x\(w)")
        let (oh, ow) = (h / 2, w / 2)
        var y = [Float](repeating: 0, count: c * oh * ow)
        var arg = [Int32](repeating: 0, count: y.count)
        xv.data.withUnsafeBufferPointer { x in
            for ch in 0..<c {
                for oy in 0..<oh {
                    for ox in 0..<ow {
                        let base = (ch * h + 2 * oy) * w + 2 * ox
                        var best = base
                        for i in [base + 1, base + w, base + w + 1] where x[i] > x[best] { best = i }
                        let o = (ch * oh + oy) * ow + ox
                        y[o] = x[best]
                        arg[o] = Int32(best)
                    }
                }
            }
        }
        let shape = xv.shape
        return Variable(Tensor(shape: [c, oh, ow], data: y), parents: [self]) { g in
            var dx = [Float](repeating: 0, count: c * h * w)
            for o in 0..<arg.count { dx[Int(arg[o])] += g.data[o] }
            return [Tensor(shape: shape, data: dx)]
        }
    }
}
