/// The unit conversions the modules need (timeouts for NIO and AsyncHTTPClient, ages and
/// latencies for JSON and logs), in one place.
extension Duration {
    /// Whole nanoseconds, rounded down.
    public var nanoseconds: Int64 {
        let (s, a) = components
        return s * 1_000_000_000 + a / 1_000_000_000
    }

    /// Whole milliseconds, rounded down.
    public var milliseconds: Int64 {
        let (s, a) = components
        return s * 1000 + a / 1_000_000_000_000_000
    }

    /// Seconds, with the fraction.
    public var inSeconds: Double {
        let (s, a) = components
        return Double(s) + Double(a) / 1e18
    }
}

extension Double {
    /// Rounded to three decimals: seconds to the millisecond, as the JSON outputs report them.
    public var roundedToThousandths: Double { (self * 1000).rounded() / 1000 }
}
