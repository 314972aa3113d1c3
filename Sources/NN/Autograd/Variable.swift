import Foundation
import Tensor

/// A node of the reverse-mode tape: a value, its gradient after `backward()`, and how to send
/// an output gradient back to the inputs. Each primitive (Primitives.swift) defines its
/// backward beside its forward and keeps only what backward needs.
public final class Variable {
    public var value: Tensor
    public var grad: Tensor?
    public let requiresGrad: Bool
    let parents: [Variable]
    /// Given d(loss)/d(this), the gradients for each parent (nil: none needed).
    let backwardFn: ((Tensor) -> [Tensor?])?

    /// A leaf: a parameter (requiresGrad) or a constant input.
    public init(_ value: Tensor, requiresGrad: Bool = false) {
        self.value = value
        self.requiresGrad = requiresGrad
        parents = []
        backwardFn = nil
    }

    init(_ value: Tensor, parents: [Variable], backward: @escaping (Tensor) -> [Tensor?]) {
        self.value = value
        let track = !Autograd.noGrad && parents.contains { $0.requiresGrad }
        requiresGrad = track
        self.parents = track ? parents : []
        backwardFn = track ? backward : nil
    }

    public var shape: [Int] { value.shape }

    /// Back-propagates from this scalar (or with `seed` as d(loss)/d(this)), accumulating
    /// `grad` on every variable that requires it.
    public func backward(seed: Tensor? = nil) { backward(seed: seed, leaves: nil) }

    /// Like `backward`, but leaf gradients go to `leaves` instead of the leaves' `grad`, so
    /// that graphs sharing parameters can be back-propagated on several threads and their
    /// gradients summed afterwards in a fixed order (reproducible training).
    public func backward(seed: Tensor?, leaves: LeafGradients?) {
        // Topological order by depth-first search.
        var order: [Variable] = []
        var seen = Set<ObjectIdentifier>()
        func visit(_ v: Variable) {
            guard v.requiresGrad, seen.insert(ObjectIdentifier(v)).inserted else { return }
            for p in v.parents { visit(p) }
            order.append(v)
        }
        visit(self)
        grad = seed ?? Tensor(repeating: 1, shape: value.shape)
        for v in order.reversed() {
            guard let g = v.grad, let fn = v.backwardFn else { continue }
            for (p, pg) in zip(v.parents, fn(g)) where p.requiresGrad {
                guard let pg else { continue }
                if p.parents.isEmpty, let leaves {
                    leaves.add(p, pg)
                } else if p.grad == nil {
                    p.grad = pg
                } else {
                    Ops.add(&p.grad!, pg)
                }
            }
            // Intermediate gradients are not needed once passed on.
            if !v.parents.isEmpty { v.grad = nil }
        }
    }

    public func zeroGrad() { grad = nil }
}

/// Gradients of leaf variables collected by one backward pass.
public final class LeafGradients {
    var grads: [ObjectIdentifier: Tensor] = [:]

    public init() {}

    func add(_ v: Variable, _ g: Tensor) {
        let id = ObjectIdentifier(v)
        if grads[id] == nil { grads[id] = g } else { Ops.add(&grads[id]!, g) }
    }

    /// Adds the collected gradients to the variables' `grad`.
    public func apply(to variables: [Variable]) {
        for v in variables {
            guard let g = grads[ObjectIdentifier(v)] else { continue }
            if v.grad == nil { v.grad = g } else { Ops.add(&v.grad!, g) }
        }
    }
}

/// Tape control.
public enum Autograd {
    /// When set, primitives build no tape (inference).
    @TaskLocal public static var noGrad = false

    /// Runs `body` without recording a tape.
    public static func withoutGrad<T>(_ body: () throws -> T) rethrows -> T {
        try $noGrad.withValue(true) { try body() }
    }
}
