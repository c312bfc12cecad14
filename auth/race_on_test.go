//go:build race

package auth

// raceDetector: sync.Pool drops items at random under the race detector,
// so allocation counts are not checked.
const raceDetector = true
