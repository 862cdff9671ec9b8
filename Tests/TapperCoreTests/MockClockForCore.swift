import TapperTestKit

typealias MockClockForCore = MockClock
