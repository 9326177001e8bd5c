; Bitween's Windows installer, made on Linux by Debian's makensis
; (scripts/windows-installer.sh passes the defines below). It installs for
; the current user only, without administrator rights, into
; %LOCALAPPDATA%\Programs\Bitween: the desktop app (bitween.exe, with the
; WebView2 loader DLL the GNU build needs beside it), bitweend.exe and
; bitweenc.exe, a Start menu entry and an entry in "Installed apps". The
; uninstaller removes exactly that and the app's login entry in the Run
; key; your data (%LOCALAPPDATA%\bitween, %APPDATA%\bitween) and your
; downloads stay.
;
; Defines: VERSION, BINDIR (the folder of the three .exe files),
; WEBVIEW2LOADER (the loader DLL), ICON (an .ico), OUTFILE; FAST for
; quick compression.

Unicode true
; A 64-bit installer (Bitween is 64-bit only; Windows says so on 32-bit).
Target amd64-unicode
!ifdef FAST
  SetCompressor zlib ; the tests' installer: made in seconds
!else
  SetCompressor /SOLID lzma
!endif
RequestExecutionLevel user
ManifestDPIAware true

!include "MUI2.nsh"
!include "LogicLib.nsh"

!define APP "Bitween"
!define UNINSTALL_KEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\Bitween"
!define RUN_KEY "Software\Microsoft\Windows\CurrentVersion\Run"
; The Evergreen WebView2 runtime's client id (per machine or per user).
!define WEBVIEW2_KEY "Microsoft\EdgeUpdate\Clients\{F3017226-FE2A-4295-8BDF-00C3A9A7E4C5}"

Name "${APP}"
OutFile "${OUTFILE}"
InstallDir "$LOCALAPPDATA\Programs\${APP}"
InstallDirRegKey HKCU "${UNINSTALL_KEY}" "InstallLocation"
BrandingText "${APP} ${VERSION}"
VIProductVersion "${VERSION}.0"
VIAddVersionKey "ProductName" "${APP}"
VIAddVersionKey "FileDescription" "${APP} installer"
VIAddVersionKey "FileVersion" "${VERSION}"
VIAddVersionKey "ProductVersion" "${VERSION}"
VIAddVersionKey "LegalCopyright" "GPL-3.0-or-later"

!define MUI_ICON "${ICON}"
!define MUI_UNICON "${ICON}"
!define MUI_ABORTWARNING
!define MUI_FINISHPAGE_RUN "$INSTDIR\bitween.exe"
!define MUI_FINISHPAGE_RUN_TEXT "Start ${APP}"
!insertmacro MUI_PAGE_WELCOME
!insertmacro MUI_PAGE_DIRECTORY
!insertmacro MUI_PAGE_INSTFILES
!insertmacro MUI_PAGE_FINISH
!insertmacro MUI_UNPAGE_CONFIRM
!insertmacro MUI_UNPAGE_INSTFILES
!insertmacro MUI_LANGUAGE "English"

Section "${APP}" Main
  SectionIn RO
  SetOutPath "$INSTDIR"
  ; (A running copy keeps its .exe open: NSIS then asks to retry.)
  File "${BINDIR}\bitween.exe"
  File "${BINDIR}\bitweend.exe"
  File "${BINDIR}\bitweenc.exe"
  File "${WEBVIEW2LOADER}"
  File "/oname=bitween.ico" "${ICON}"
  WriteUninstaller "$INSTDIR\uninstall.exe"
  CreateShortcut "$SMPROGRAMS\${APP}.lnk" "$INSTDIR\bitween.exe" "" "$INSTDIR\bitween.ico"

  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayName" "${APP}"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayVersion" "${VERSION}"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "Publisher" "The Bitween developers"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayIcon" "$INSTDIR\bitween.ico"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "InstallLocation" "$INSTDIR"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "UninstallString" '"$INSTDIR\uninstall.exe"'
  WriteRegStr HKCU "${UNINSTALL_KEY}" "QuietUninstallString" '"$INSTDIR\uninstall.exe" /S'
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "NoModify" 1
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "NoRepair" 1

  ; The desktop app's window is Microsoft Edge WebView2, part of Windows
  ; 11 and of an up-to-date Windows 10. Without it the app cannot open.
  ReadRegStr $0 HKLM "SOFTWARE\WOW6432Node\${WEBVIEW2_KEY}" "pv"
  ${If} $0 == ""
    ReadRegStr $0 HKCU "Software\${WEBVIEW2_KEY}" "pv"
  ${EndIf}
  ${If} $0 == ""
  ${OrIf} $0 == "0.0.0.0"
    MessageBox MB_ICONEXCLAMATION "The Microsoft Edge WebView2 Runtime is not installed, and the Bitween window needs it. Install it from https://go.microsoft.com/fwlink/p/?LinkId=2124703 and start Bitween again. (bitweend and bitweenc work without it.)" /SD IDOK
  ${EndIf}
SectionEnd

Section "Uninstall"
  Delete "$INSTDIR\bitween.exe"
  Delete "$INSTDIR\bitweend.exe"
  Delete "$INSTDIR\bitweenc.exe"
  Delete "$INSTDIR\WebView2Loader.dll"
  Delete "$INSTDIR\bitween.ico"
  Delete "$INSTDIR\uninstall.exe"
  RMDir "$INSTDIR"
  Delete "$SMPROGRAMS\${APP}.lnk"
  ; "Start at login" (Settings) wrote this value; it would point nowhere.
  DeleteRegValue HKCU "${RUN_KEY}" "${APP}"
  DeleteRegKey HKCU "${UNINSTALL_KEY}"
SectionEnd
