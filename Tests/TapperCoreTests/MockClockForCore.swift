import TapperTesting

typealias MockClockForCore = MockClock
