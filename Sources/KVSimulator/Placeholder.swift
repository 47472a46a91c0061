public enum KVSimulatorPlaceholder {}
