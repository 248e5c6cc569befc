namespace Anteroom.Storage;

/// <summary>Anteroom's data directory: created on first use, readable by its owner only.</summary>
internal static class DataDirectory
{
    public const string DatabaseFile = "anteroom.db";

    /// <summary>Creates the directory if needed (mode 0700 on Unix: it holds keys) and returns its full path.</summary>
    public static string Prepare(string path)
    {
        string full = Path.GetFullPath(path);
        if (!Directory.Exists(full))
        {
            if (OperatingSystem.IsWindows())
            {
                Directory.CreateDirectory(full);
            }
            else
            {
                Directory.CreateDirectory(full, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            }
        }

        return full;
    }

    public static string DatabasePath(string directory) => Path.Combine(directory, DatabaseFile);
}
