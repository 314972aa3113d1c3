// The clinical service target (daemon, journal, configuration).
