// Package pipeline wires the stages of the data path together for one run:
// packet sources (DPDK queues or capture files) feed one worker each, the
// workers feed the writer through a bounded block pool, and the writer's
// commits feed the index. capture, import and bench all run through it, so
// imported and captured data are alike.
//
// It owns start-up order, shutdown order (stop sources, drain workers, flush
// the writer, flush the index) and the end-of-run accounting of every stage.
// It must not decode, store or index anything itself.
package pipeline
