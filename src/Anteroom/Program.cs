return await Anteroom.AnteroomCli.RunAsync(args);

/// <summary>The entry point; see <see cref="Anteroom.AnteroomCli"/>.</summary>
public partial class Program;
